package proxy

import (
	"context"
	"net"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// streamContext is an active stream's context.Context, made once and
// reused rather than a context.WithCancel per request (a context, its
// cancel func and its done channel: three allocations). It ends when the
// stream's route timeout or stream idle timeout fires (streamIdle), when
// the codec's context ends (the client went away, the connection closed,
// the stream was reset: the parent), and when the stream ends, unless the
// stream is reused (activeStream.reusable): then nothing holds the context
// any more, and its done channel serves the next stream.
//
// The parent's end reaches it through one registration on the parent
// (the parent's Watch when it is a stream.Watchable, as the codecs' stream
// contexts are, which allocates nothing; else context.AfterFunc). On
// HTTP/1.x the parent is the connection's context, the same for each of
// its streams, and the connection keeps the context for its next stream:
// the registration is then made once per connection.
type streamContext struct {
	// Done, Err, AfterFunc and the end itself (Cancel).
	stream.Cancellable

	parent context.Context
	// deadline is the route timeout's (zero: none); the stream's timer
	// enforces it, the context has no timer of its own.
	deadline time.Time

	// The registration on parent: watchID on watcher (the parent, when
	// it is a stream.Watchable), else stopParent ends it; neither set
	// without one. parentDone is the registered callback, made once per
	// object.
	watcher    stream.Watchable
	watchID    uint64
	stopParent func() bool
	parentDone func()

	// clientIPOf and clientIP: the client's address without its port,
	// worked out once for the connection (its address, clientIPOf, is
	// the same string for each of its streams): clientIPFor.
	clientIPOf, clientIP string
}

// clientIPFor is remote's host part (empty when remote has no port), for
// X-Forwarded-For and the hash policy's source IP. On HTTP/1.x the
// context is the connection's, and this splits its address once.
func (c *streamContext) clientIPFor(remote string) string {
	if remote != c.clientIPOf || remote == "" {
		c.clientIP, _, _ = net.SplitHostPort(remote)
		c.clientIPOf = remote
	}
	return c.clientIP
}

// begin readies c for a stream whose codec context is parent, with the
// route timeout's deadline (zero for none).
func (c *streamContext) begin(parent context.Context, deadline time.Time) {
	if c.parentDone == nil {
		c.parentDone = c.onParentDone
	}
	c.deadline = deadline
	if c.registered() && c.parent == parent {
		// Kept from the connection's last stream: still registered (or,
		// if the connection has just ended, already cancelled).
		return
	}
	c.parent = parent
	// A parent that registers by itself (the codecs' stream contexts) is
	// asked first: its Done would make the channel it otherwise makes
	// only when someone waits on it, and context.AfterFunc allocates.
	if w, ok := parent.(stream.Watchable); ok {
		// An id of 0: the parent had ended, and parentDone is started
		// but may not have run. It counts as a registration that cannot
		// be stopped, so that release never lets c serve another stream
		// that the late parentDone would cancel.
		c.watcher, c.watchID = w, w.Watch(c.parentDone)
		return
	}
	if parent.Done() == nil {
		return // a parent that never ends
	}
	c.stopParent = context.AfterFunc(parent, c.parentDone)
}

func (c *streamContext) onParentDone() { c.Cancel(c.parent.Err()) }

// release ends the stream's use of c. keep says whether the active
// stream is to be reused; it returns whether it may be: nothing waits
// for c to end, and c was not ended. Otherwise c is cancelled (what
// still holds it sees the stream end) and its registration on the
// parent ends. keepParent leaves the registration on the parent for the
// connection's next stream.
func (c *streamContext) release(keep, keepParent bool) bool {
	keep = keep && c.Quiet()
	if keep {
		// Nothing of the stream stays; the stream's own goroutine is
		// the only one that reads it.
		c.deadline = time.Time{}
	}
	if keep && !keepParent && c.registered() {
		// false: the parent ended, and its callback may still run.
		keep = c.unregister()
	}
	if !keep {
		c.Cancel(context.Canceled)
		c.unregister()
	}
	return keep
}

func (c *streamContext) registered() bool { return c.watcher != nil || c.stopParent != nil }

// unregister ends the registration on the parent, if any, and reports
// whether it did so before the parent's end started parentDone.
func (c *streamContext) unregister() bool {
	ok := true
	switch {
	case c.watcher != nil:
		ok = c.watchID != 0 && c.watcher.Unwatch(c.watchID)
	case c.stopParent != nil:
		ok = c.stopParent()
	}
	c.watcher, c.watchID, c.stopParent = nil, 0, nil
	return ok
}

func (c *streamContext) Deadline() (time.Time, bool) {
	d, ok := c.parent.Deadline()
	if !c.deadline.IsZero() && (!ok || c.deadline.Before(d)) {
		return c.deadline, true
	}
	return d, ok
}

// Value is the parent's.
func (c *streamContext) Value(key any) any { return c.parent.Value(key) }
