package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/route"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// streamIdle is Envoy's stream idle timeout for one exchange: a stream
// that makes no progress either way (no byte read from or written to the
// client or the upstream) for d is ended. Progress is noted at every read
// and write (the request body's wrapper below, activeStream's writes and
// response reads), which only store a timestamp;
// the timer re-arms itself for what is left when it finds progress.
//
// Ending the stream cancels its context (the upstream request stops, and
// a 408 or 504 goes out if nothing was sent yet) and, since neither a
// read nor a write blocked on the client looks at a context, moves the
// client's deadlines into the past (when the codec offers deadlines; else
// a response under way is reset, which a codec allows from any goroutine):
// a request body the client stopped sending and a response body it
// stopped reading end at once. The write
// deadline is moved only once the response has started, so the local
// reply of a stream that timed out before that still goes out.
//
// The state and the body wrapper live in the activeStream; the timer and
// its callback are the only allocations: this runs for every request.
//
// The same timer enforces the route timeout (routeAt after start; 0 for
// none), so that a stream has one timer for both; d is 0 when only the
// route timeout is set.
type streamIdle struct {
	d       time.Duration
	routeAt time.Duration
	route   *routeContext
	start   time.Time
	last    atomic.Int64 // time.Since(start) at the last progress
	timer   *time.Timer
	cancel  context.CancelFunc
	dl      deadlines // the client's; nil when the codec has none
	// ss is reset to abandon the stream: what ends a write blocked on a
	// client that stopped reading when the codec has no deadlines.
	ss stream.ServerStream

	// mu orders a firing timer against stop, so that no deadline moves
	// once the exchange is over (the connection may be serving the next
	// request by then).
	mu          sync.Mutex
	stopped     bool
	fired       atomic.Bool
	respStarted atomic.Bool
	reqBodyDone atomic.Bool

	reqBody idleBody
}

// deadlines is the optional face of a stream.ServerStream that ends
// blocked body I/O with the client (httpstream's streams have it); the
// stream contract has no deadlines.
type deadlines interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// begin starts the timer for the stream ss, for the idle timeout d and
// the route timeout routeTimeout (either may be 0: off) from start;
// cancel ends its context, route is marked when the route timeout ends it.
func (s *streamIdle) begin(d, routeTimeout time.Duration, start time.Time, ss stream.ServerStream, cancel context.CancelFunc, route *routeContext) {
	s.d, s.routeAt, s.route, s.start, s.cancel, s.ss = d, routeTimeout, route, start, cancel, ss
	s.dl, _ = ss.(deadlines)
	s.timer = time.AfterFunc(s.next(0), s.check)
}

// next is how long until the timer has something to check, elapsed
// after start with the stream last making progress idle ago.
func (s *streamIdle) next(elapsed time.Duration) time.Duration {
	wait := time.Duration(-1)
	if s.d > 0 {
		idle := elapsed - time.Duration(s.last.Load())
		wait = s.d - idle
	}
	if s.routeAt > 0 && !s.route.expired.Load() && (wait < 0 || s.routeAt-elapsed < wait) {
		wait = s.routeAt - elapsed
	}
	return max(wait, 0)
}

// routeContext is the stream's context when its route has a timeout:
// the stream's cancel of the codec's context, with the route's deadline,
// which the stream's timer enforces (no timer of the context's own).
// Err is context.DeadlineExceeded once the deadline ended it.
type routeContext struct {
	context.Context
	deadline time.Time
	expired  atomic.Bool
}

func (c *routeContext) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *routeContext) Err() error {
	if c.expired.Load() {
		return context.DeadlineExceeded
	}
	return c.Context.Err()
}

func (s *streamIdle) reset() { s.ss.Reset(stream.ResetCancel) }

// requestBody wraps the client's request body (length n, -1 unknown).
func (s *streamIdle) requestBody(b io.ReadCloser, n int64) io.ReadCloser {
	s.reqBody = idleBody{ReadCloser: b, s: s, remaining: max(n, -1)}
	return &s.reqBody
}

func (s *streamIdle) progress() { s.last.Store(int64(time.Since(s.start))) }

func (s *streamIdle) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	elapsed := time.Since(s.start)
	if s.routeAt > 0 && elapsed >= s.routeAt && !s.route.expired.Load() {
		// The route timeout: the stream's context ends as a deadline.
		s.route.expired.Store(true)
		s.cancel()
	}
	if s.d <= 0 || elapsed-time.Duration(s.last.Load()) < s.d {
		if s.d > 0 || !s.route.expired.Load() {
			s.timer.Reset(s.next(elapsed))
		}
		return
	}
	s.fired.Store(true)
	s.cancel()
	if s.dl == nil {
		if s.respStarted.Load() {
			s.reset()
		}
		return
	}
	if !s.reqBodyDone.Load() {
		s.dl.SetReadDeadline(aLongTimeAgo)
	}
	if s.respStarted.Load() {
		s.dl.SetWriteDeadline(aLongTimeAgo)
	}
}

// responseStarted is called as the upstream's response head goes to the
// client (a local reply does not count: it is what a stream that timed
// out sends). Whichever of it and the timer comes second moves the write
// deadline.
func (s *streamIdle) responseStarted() {
	s.respStarted.Store(true)
	if s.fired.Load() {
		s.mu.Lock()
		if !s.stopped {
			if s.dl != nil {
				s.dl.SetWriteDeadline(aLongTimeAgo)
			} else {
				s.reset()
			}
		}
		s.mu.Unlock()
	}
}

// stop ends the timer when the exchange is over.
func (s *streamIdle) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.timer.Stop()
}

// aLongTimeAgo is a deadline in the past: it fails blocked I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// idleBody notes progress on the client's request body, and its end (at
// EOF, or once Content-Length bytes came: a reader may stop there).
type idleBody struct {
	io.ReadCloser
	s         *streamIdle
	remaining int64 // -1 when the length is unknown
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.s.progress()
	}
	if b.remaining > 0 {
		b.remaining = max(b.remaining-int64(n), 0)
	}
	if err == io.EOF || b.remaining == 0 {
		b.s.reqBodyDone.Store(true)
	}
	return n, err
}

// reply is the local reply of a stream that timed out before its response
// started: 408 when the client stopped sending its request body (as Envoy
// and nginx answer a stalled upload), else 504.
func (s *streamIdle) reply() *filter.LocalReply {
	if !s.reqBodyDone.Load() {
		return &filter.LocalReply{Status: http.StatusRequestTimeout, Body: []byte("stream timeout\n"), Details: "stream_idle_timeout", GRPCStatus: grpcDeadlineExceeded}
	}
	return &filter.LocalReply{Status: http.StatusGatewayTimeout, Body: []byte("stream timeout\n"), Details: "stream_idle_timeout", GRPCStatus: grpcDeadlineExceeded}
}

// streamIdleTimeout is the route's stream_idle_timeout when it sets one,
// else the listener's.
func streamIdleTimeout(lr *listenerRoutes, rt *route.Route) time.Duration {
	if d := rt.StreamIdleTimeout; d != nil {
		return d.D()
	}
	return lr.streamIdle
}
