package http1

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/runtime/lazytimer"
)

// watchDelay is how long a handler may run, its request fully read,
// before the connection is watched for the client going away. Fast
// requests never start the watch (no goroutine per request); a slow one
// (an upstream that takes its time, a long poll) pays one goroutine, and
// a client that leaves ends the request's context, as net/http's
// background read and Envoy's codec do.
//
// The timer is the connection's (lazytimer: not reset and stopped for
// every request), so a request is watched between one and two delays
// after it was read.
const watchDelay = 250 * time.Millisecond

type watchState uint8

const (
	watchIdle watchState = iota
	watchArmed
	watchReading
)

// watch reads the connection while the handler runs, once the request is
// read: a byte read is the client's next request (kept for it), an error
// is the client gone.
type watch struct {
	mu       sync.Mutex
	cond     sync.Cond
	timer    lazytimer.Timer
	state    watchState
	aborting bool
	off      bool // between stopWatch and the next request
	b        [1]byte
	got      bool
}

// startWatch allows the watch for a new request.
func (c *conn) startWatch() {
	c.watch.mu.Lock()
	c.watch.off = false
	c.watch.mu.Unlock()
}

// arm starts the delay if nothing is buffered (pipelined bytes show the
// client is there, and reading more is the next request's business).
func (c *conn) armWatch() {
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.off || w.state != watchIdle || w.got || len(c.r.buffered()) > 0 {
		return
	}
	w.state = watchArmed
	if !w.timer.Inited() {
		w.cond.L = &w.mu
		w.timer.Init(c.watchFired)
	}
	w.timer.Begin(watchDelay)
}

func (c *conn) watchFired() {
	w := &c.watch
	w.mu.Lock()
	if !w.timer.Fired(watchDelay, w.state == watchArmed) {
		w.mu.Unlock()
		return
	}
	w.state = watchReading
	// The wait's deadline may have been kept through the request (see
	// waitDeadline): it must not end a long one.
	c.clearReadDeadline()
	w.mu.Unlock()

	n, err := c.nc.Read(w.b[:])

	w.mu.Lock()
	aborted := w.aborting
	w.state, w.got = watchIdle, n == 1
	w.cond.Broadcast()
	w.mu.Unlock()
	if err != nil && !(aborted && errors.Is(err, os.ErrDeadlineExceeded)) {
		c.cancel() // the client went away: nothing waits for this answer
	}
}

// stopWatch ends the watch before anything else reads the connection (the
// handler returned, or hijacks it), and gives a byte it read to the buffer.
func (c *conn) stopWatch() {
	w := &c.watch
	w.mu.Lock()
	switch w.state {
	case watchArmed:
		w.state = watchIdle // the timer, if it still runs, finds it so
	case watchReading:
		w.aborting = true
		c.setReadDeadline(aLongTimeAgo)
		for w.state == watchReading {
			w.cond.Wait()
		}
		w.aborting = false
		c.clearReadDeadline()
	}
	got := w.got
	w.got, w.off = false, true
	w.mu.Unlock()
	if got {
		// The request and its body are over, so the buffer's bytes are
		// not referenced any more: the byte can go at its start.
		if c.r.w == len(c.r.buf) {
			c.r.r, c.r.w = 0, 0
		}
		c.r.buf[c.r.w] = w.b[0]
		c.r.w++
	}
}

// endWatch stops the timer for good: the connection is done.
func (c *conn) endWatch() {
	c.stopWatch()
	w := &c.watch
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)
