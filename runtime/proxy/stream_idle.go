package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/runtime/clock"
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
// The state and the body wrapper live in the activeStream; the timer is
// the active stream's (streamTimer), outlives each stream and is not
// reset and stopped for every request: this runs for every request, and
// a Reset and a Stop a request showed in profiles with the runtime's
// upkeep of its timer heap.
//
// The same timer enforces the route timeout (routeAt after start; 0 for
// none), so that a stream has one timer for both; d is 0 when only the
// route timeout is set.
type streamIdle struct {
	d       time.Duration
	routeAt time.Duration
	start   time.Time
	last    atomic.Int64 // time.Since(start) at the last progress
	// t is the active stream's timer, which serves this stream from
	// begin to stop; its mutex orders a firing timer against stop, so
	// that no deadline moves once the exchange is over (the connection
	// may be serving the next request by then).
	t *streamTimer
	// ctx is the stream's context, which the timer ends.
	ctx *streamContext
	dl  deadlines // the client's; nil when the codec has none
	// ss is reset to abandon the stream: what ends a write blocked on a
	// client that stopped reading when the codec has no deadlines.
	ss stream.ServerStream

	// routeExpired: the route timeout ended the stream (under t.mu once
	// the timer runs).
	routeExpired bool
	fired        atomic.Bool
	respStarted  atomic.Bool
	reqBodyDone  atomic.Bool

	reqBody idleBody
}

// streamTimer is an active stream's one timer, kept from stream to stream
// (recycle leaves it alone). It runs while it has something to check and
// is moved only when a stream needs it earlier than it is due: a stream
// that begins while it runs for an earlier stream's deadline, which is
// never later than this one's with the same timeouts, leaves it as it
// is, and when it fires it checks the stream it finds and starts again
// for what that stream has left. A stream's timeouts so fire on time,
// and the timer costs nothing per request once it runs.
type streamTimer struct {
	mu      sync.Mutex
	timer   *time.Timer
	ticking bool        // the timer runs
	due     time.Time   // when it fires, while it runs
	live    *streamIdle // the stream it serves; nil between streams
}

// arm makes the timer fire wait from now (due then) unless it already
// fires no later. Called with t.mu held.
func (t *streamTimer) arm(wait time.Duration, due time.Time) {
	if t.ticking && !t.due.After(due) {
		return
	}
	if t.timer == nil {
		t.timer = time.AfterFunc(wait, t.fire)
	} else {
		t.timer.Reset(wait)
	}
	t.ticking, t.due = true, due
}

// halt stops the timer for good: its active stream is not reused.
func (t *streamTimer) halt() {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.ticking, t.live = false, nil
	t.mu.Unlock()
}

func (t *streamTimer) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ticking = false
	if s := t.live; s != nil {
		s.check()
	}
}

// deadlines is the optional face of a stream.ServerStream that ends
// blocked body I/O with the client (httpstream's streams have it); the
// stream contract has no deadlines.
type deadlines interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// begin starts the stream's timeouts on t for the stream ss, for the
// idle timeout d and the route timeout routeTimeout (either may be 0:
// off) from start; the timer ends ctx, with context.DeadlineExceeded
// when the route timeout does.
func (s *streamIdle) begin(t *streamTimer, d, routeTimeout time.Duration, start time.Time, ss stream.ServerStream, ctx *streamContext) {
	s.d, s.routeAt, s.start, s.ctx, s.ss, s.t = d, routeTimeout, start, ctx, ss, t
	s.dl, _ = ss.(deadlines)
	wait := s.next(0)
	t.mu.Lock()
	t.live = s
	t.arm(wait, start.Add(wait))
	t.mu.Unlock()
}

// next is how long until the timer has something to check, elapsed
// after start with the stream last making progress idle ago.
func (s *streamIdle) next(elapsed time.Duration) time.Duration {
	wait := time.Duration(-1)
	if s.d > 0 {
		idle := elapsed - time.Duration(s.last.Load())
		wait = s.d - idle
	}
	if s.routeAt > 0 && !s.routeExpired && (wait < 0 || s.routeAt-elapsed < wait) {
		wait = s.routeAt - elapsed
	}
	return max(wait, 0)
}

func (s *streamIdle) reset() { s.ss.Reset(stream.ResetCancel) }

// requestBody wraps the client's request body (length n, -1 unknown).
func (s *streamIdle) requestBody(b io.ReadCloser, n int64) io.ReadCloser {
	s.reqBody = idleBody{ReadCloser: b, s: s, remaining: max(n, -1)}
	return &s.reqBody
}

func (s *streamIdle) progress() { s.progressAt(clock.Since(s.start)) }

// progressAt notes progress at elapsed after the stream's start, for a
// caller that has just read the clock for something else.
func (s *streamIdle) progressAt(elapsed time.Duration) { s.last.Store(int64(elapsed)) }

// check runs from the timer, with s.t.mu held and s the stream it
// serves.
func (s *streamIdle) check() {
	elapsed := clock.Since(s.start)
	if s.routeAt > 0 && elapsed >= s.routeAt && !s.routeExpired {
		// The route timeout: the stream's context ends as a deadline.
		s.routeExpired = true
		s.ctx.Cancel(context.DeadlineExceeded)
	}
	if s.d <= 0 || elapsed-time.Duration(s.last.Load()) < s.d {
		if s.d > 0 || !s.routeExpired {
			wait := s.next(elapsed)
			s.t.arm(wait, s.start.Add(elapsed+wait))
		}
		return
	}
	s.fired.Store(true)
	s.ctx.Cancel(context.Canceled)
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
		s.t.mu.Lock()
		if s.t.live == s {
			if s.dl != nil {
				s.dl.SetWriteDeadline(aLongTimeAgo)
			} else {
				s.reset()
			}
		}
		s.t.mu.Unlock()
	}
}

// stop ends the timer's service to s when the exchange is over (the
// timer runs on, for a later stream or to find none). It reports whether
// the timer left the stream alone: false when it ended the stream's
// context, which must then not be reused.
func (s *streamIdle) stop() bool {
	t := s.t
	t.mu.Lock()
	if t.live == s {
		t.live = nil
	}
	acted := s.routeExpired || s.fired.Load()
	t.mu.Unlock()
	return !acted
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
