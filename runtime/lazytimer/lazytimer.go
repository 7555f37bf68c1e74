// Package lazytimer is the one timer of a connection that serves one
// request after another and must act on a request that has lasted a
// delay (the downstream codec's watch for a client gone away, the
// upstream pool's watch of an exchange's context).
//
// Why not a Reset and a Stop per request: they showed in profiles, with
// the runtime's upkeep of its timer heap. Instead the timer starts only
// when it is not running; when it fires during a later request than the
// one it was started for, it starts again for that one. So a request is
// acted on between one and two delays after it began, and a connection
// that serves many short requests touches its timer about once a delay.
package lazytimer

import "time"

// Timer is the connection's timer. It has no lock of its own: every
// method is called with the owner's lock held, the one that also guards
// what the callback looks at, and the callback takes that lock before it
// calls Fired.
type Timer struct {
	f        func() // what the timer calls (Init)
	t        *time.Timer
	ticking  bool   // the timer runs
	begun    uint64 // requests begun so far; the current one's number
	timedFor uint64 // the request the running timer was started for
	starts   int    // times the timer was started, for tests
}

// Init gives the callback, once, before the first Begin. It is kept
// rather than passed to Begin because a method value passed on every
// request would be an allocation on every request.
func (l *Timer) Init(f func()) { l.f = f }

// Inited reports whether Init was called.
func (l *Timer) Inited() bool { return l.f != nil }

// Begin notes that a request begins and starts the timer, to call the
// callback after d, unless it runs already (it then fires within d, and
// Fired starts it again for this request).
func (l *Timer) Begin(d time.Duration) {
	l.begun++
	if l.ticking {
		return
	}
	if l.t == nil {
		l.t = time.AfterFunc(d, l.f)
	} else {
		l.t.Reset(d)
	}
	l.ticking, l.timedFor = true, l.begun
	l.starts++
}

// Fired is the callback's first step: true when the request the timer
// was started for is still the one that waits (pending) and has had its
// whole delay d, so the callback acts on it. When a later request waits,
// the timer starts again for it and Fired says false; with none waiting
// the timer stays stopped until the next Begin.
func (l *Timer) Fired(d time.Duration, pending bool) bool {
	l.ticking = false
	if !pending {
		return false
	}
	if l.begun != l.timedFor {
		l.t.Reset(d)
		l.ticking, l.timedFor = true, l.begun
		l.starts++
		return false
	}
	return true
}

// Stop stops the timer for good: the connection is done.
func (l *Timer) Stop() {
	if l.t != nil {
		l.t.Stop()
	}
	l.ticking = false
}

// Starts is how many times the timer was started, for tests that check
// it is not started per request.
func (l *Timer) Starts() int { return l.starts }
