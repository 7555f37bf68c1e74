package stream

import "sync"

// Cancellable is the part of a stream's context.Context that ends: Done,
// Err, and the AfterFunc method the context package looks for, so that a
// context derived from it (context.WithCancel, context.AfterFunc) registers
// a function here instead of starting a goroutine to watch a parent of a
// type it does not know. The codecs' and the proxy's stream contexts embed
// it and add their deadlines and values. Its Done channel is made on first
// use; the zero value is ready, and a Cancellable that never ended can be
// reused as it is (Quiet).
type Cancellable struct {
	mu     sync.Mutex
	done   chan struct{} // nil until Done is called
	err    error
	funcs  []afterFunc  // registered by AfterFunc, not yet run or stopped
	first  [1]afterFunc // funcs' storage for the usual one
	nextID uint64       // numbers registrations, so a stale stop finds nothing
}

type afterFunc struct {
	id uint64
	f  func()
}

// closedChan is the Done channel of a context that ended before anyone
// asked for one.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Cancel ends c with err, once; each registered function then runs on a
// goroutine of its own.
func (c *Cancellable) Cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	for _, a := range c.funcs {
		go a.f()
	}
	clear(c.funcs)
	c.funcs = nil
}

// Done is context.Context's.
func (c *Cancellable) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

// Err is context.Context's.
func (c *Cancellable) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Quiet reports that c has not ended and nothing waits for it to: it may
// serve another stream as it is.
func (c *Cancellable) Quiet() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil && len(c.funcs) == 0
}

// AfterFunc runs f on a goroutine of its own once c ends (at once if it
// has), as context.AfterFunc; stop unregisters f and reports whether it
// did so before f was started.
func (c *Cancellable) AfterFunc(f func()) (stop func() bool) {
	id := c.Watch(f)
	if id == 0 {
		return stopped
	}
	return func() bool { return c.stop(id) }
}

// Watch is AfterFunc without the stop function, which is an allocation:
// it returns the registration's number for Unwatch (0 when c had ended
// and f was started at once). For a caller that watches c on every
// request, such as an upstream exchange.
func (c *Cancellable) Watch(f func()) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return 0
	}
	c.nextID++
	if c.funcs == nil {
		c.funcs = c.first[:0]
	}
	c.funcs = append(c.funcs, afterFunc{id: c.nextID, f: f})
	return c.nextID
}

// Unwatch ends the registration Watch numbered id and reports whether it
// did so before its function was started.
func (c *Cancellable) Unwatch(id uint64) bool { return c.stop(id) }

// Watchable is a context that registers a function to run when it ends
// without allocating, and that ends only then: Cancellable, and the
// codecs' and the proxy's stream contexts built on it. Whoever watches a
// stream's context on every request looks for it.
type Watchable interface {
	Watch(f func()) uint64
	Unwatch(id uint64) bool
}

func (c *Cancellable) stop(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.funcs {
		if a.id == id {
			c.funcs = append(c.funcs[:i], c.funcs[i+1:]...)
			c.funcs[len(c.funcs):cap(c.funcs)][0] = afterFunc{} // let f go
			return true
		}
	}
	return false
}

// stopped is the stop function of an AfterFunc that ran at once.
func stopped() bool { return false }
