package server

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// closer runs the closes a swap leaves for later (replaced plugin
// versions after their grace, a replaced snapshot's clusters after the
// drain time) from one goroutine with one timer, in the order they fall
// due. A reload used to start a goroutine sleeping out each wait, so a
// burst of reloads held thousands of them, each keeping its whole old
// snapshot alive until it woke; a queued close holds only what it closes,
// and a goroutine exists only while a close is under way (a plugin
// version's close waits for its streams).
type closer struct {
	mu      sync.Mutex
	queue   []closeJob // by due time
	started bool       // the loop runs (from the first close queued)
	stopped bool       // shutdown: closes run at once
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	running sync.WaitGroup
}

type closeJob struct {
	due time.Time
	fn  func()
}

func newCloser() *closer {
	return &closer{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// after runs fn d from now; after shutdown, at once.
func (c *closer) after(d time.Duration, fn func()) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		fn()
		return
	}
	j := closeJob{due: time.Now().Add(d), fn: fn}
	i := sort.Search(len(c.queue), func(i int) bool { return c.queue[i].due.After(j.due) })
	c.queue = slices.Insert(c.queue, i, j)
	if !c.started {
		c.started = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// queued is how many closes wait for their time.
func (c *closer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func (c *closer) loop() {
	defer close(c.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c.mu.Lock()
		now := time.Now()
		n := 0
		for n < len(c.queue) && !c.queue[n].due.After(now) {
			n++
		}
		due := slices.Clone(c.queue[:n])
		// Shift rather than reslice, so the array does not keep growing
		// at its end while its head is dropped.
		c.queue = slices.Delete(c.queue, 0, n)
		next := time.Duration(-1)
		if len(c.queue) > 0 {
			next = max(time.Until(c.queue[0].due), 0)
		}
		c.mu.Unlock()
		for _, j := range due {
			c.run(j.fn)
		}
		if next >= 0 {
			t.Reset(next)
		} else {
			t.Stop()
		}
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-t.C:
		}
	}
}

func (c *closer) run(fn func()) {
	c.running.Add(1)
	go func() {
		defer c.running.Done()
		fn()
	}()
}

// shutdown runs every queued close now and waits for all of them. Safe
// to repeat.
func (c *closer) shutdown() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		c.running.Wait()
		return
	}
	c.stopped = true
	queue := c.queue
	c.queue = nil
	started := c.started
	c.mu.Unlock()
	if started {
		close(c.stop)
		<-c.done
	}
	for _, j := range queue {
		c.run(j.fn)
	}
	c.running.Wait()
}
