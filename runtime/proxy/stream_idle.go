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
)

// streamIdle is Envoy's stream idle timeout for one exchange: a stream
// that makes no progress either way (no byte read from or written to the
// client or the upstream) for d is ended. Progress is noted by the
// wrappers below at every read and write, which only store a timestamp;
// the timer re-arms itself for what is left when it finds progress.
//
// Ending the stream cancels its context (the upstream request stops, and
// a 408 or 504 goes out if nothing was sent yet) and, since neither a
// read nor a write blocked on the client looks at a context, moves the
// client's deadlines into the past: a request body the client stopped
// sending and a response body it stopped reading end at once. The write
// deadline is moved only once the response has started, so the local
// reply of a stream that timed out before that still goes out.
//
// One allocation holds the state and the wrappers, and the timer is the
// only other: this runs for every request.
type streamIdle struct {
	d      time.Duration
	start  time.Time
	last   atomic.Int64 // time.Since(start) at the last progress
	timer  *time.Timer
	cancel context.CancelFunc
	w      http.ResponseWriter // the client's, for its deadlines

	// mu orders a firing timer against stop, so that no deadline moves
	// once the exchange is over (the connection may be serving the next
	// request by then).
	mu          sync.Mutex
	stopped     bool
	fired       atomic.Bool
	respStarted atomic.Bool
	reqBodyDone atomic.Bool

	writer   idleWriter
	reqBody  idleBody
	respBody idleBody
}

// newStreamIdle starts the timer; cancel ends the stream's context.
func newStreamIdle(d time.Duration, w http.ResponseWriter, cancel context.CancelFunc) *streamIdle {
	s := &streamIdle{d: d, start: time.Now(), cancel: cancel, w: w}
	s.writer = idleWriter{ResponseWriter: w, s: s}
	s.timer = time.AfterFunc(d, s.check)
	return s
}

// requestBody wraps the client's request body (length n, -1 unknown).
func (s *streamIdle) requestBody(b io.ReadCloser, n int64) io.ReadCloser {
	s.reqBody = idleBody{ReadCloser: b, s: s, client: true, remaining: max(n, -1)}
	return &s.reqBody
}

// responseBody wraps the upstream's response body.
func (s *streamIdle) responseBody(b io.ReadCloser) io.ReadCloser {
	s.respBody = idleBody{ReadCloser: b, s: s}
	return &s.respBody
}

func (s *streamIdle) progress() { s.last.Store(int64(time.Since(s.start))) }

func (s *streamIdle) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if idle := time.Since(s.start) - time.Duration(s.last.Load()); idle < s.d {
		s.timer.Reset(s.d - idle)
		return
	}
	s.fired.Store(true)
	s.cancel()
	rc := http.NewResponseController(s.w)
	if !s.reqBodyDone.Load() {
		rc.SetReadDeadline(aLongTimeAgo)
	}
	if s.respStarted.Load() {
		rc.SetWriteDeadline(aLongTimeAgo)
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
			http.NewResponseController(s.w).SetWriteDeadline(aLongTimeAgo)
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

// idleBody notes progress on a body read: the upstream's response body,
// or the client's request body, whose end it also notes (at EOF, or
// once Content-Length bytes came: a reader may stop there).
type idleBody struct {
	io.ReadCloser
	s         *streamIdle
	client    bool
	remaining int64 // of a client body; -1 when the length is unknown
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.s.progress()
	}
	if b.client {
		if b.remaining > 0 {
			b.remaining = max(b.remaining-int64(n), 0)
		}
		if err == io.EOF || b.remaining == 0 {
			b.s.reqBodyDone.Store(true)
		}
	}
	return n, err
}

// idleWriter notes progress on every write to the client. It keeps the
// writer's optional faces that the proxy uses: Flush, and Unwrap for
// http.ResponseController (Hijack, deadlines).
type idleWriter struct {
	http.ResponseWriter
	s *streamIdle
}

func (w *idleWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if n > 0 {
		w.s.progress()
	}
	return n, err
}

func (w *idleWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	w.s.progress()
}

func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
