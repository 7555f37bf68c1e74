package http2

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// serverStream is one request: the stream.ServerStream its handler gets.
// The reader fills req before the handler starts; everything else shared
// with the reader is under sc.mu.
type serverStream struct {
	sc          *serverConn
	id          uint32
	req         stream.HeaderMap
	trailers    stream.HeaderMap
	hasTrailers bool
	bodyLen     int64
	declaredLen int64     // content-length, -1 without one
	headRequest bool      // a HEAD: its response's content-length describes no body
	cond        sync.Cond // body bytes, end or reset (L is sc.mu)

	// Under sc.mu.
	recv         bodyBuffer // body bytes received, not read yet
	received     int64      // DATA payload bytes, for content-length
	recvWindow   int64      // what the peer may still send
	recvUnacked  int64      // read, not yet returned in a WINDOW_UPDATE
	closedRemote bool       // END_STREAM received
	sendWindow   int64
	respLen      int64 // the response's content-length, -1 without one (or not checked)
	respSent     int64 // response body bytes written
	wroteHeaders bool
	endSent      bool
	reset        bool
	resetByPeer  bool
	err          error // why reads and writes fail
	ctx          *streamContext
	nextStart    *serverStream // the stream to start after this one (dispatchStarts)
}

var streamPool = sync.Pool{New: func() any { return new(serverStream) }}

func newServerStream(sc *serverConn, id uint32) *serverStream {
	st := streamPool.Get().(*serverStream)
	st.sc, st.id = sc, id
	st.cond.L = &sc.mu
	st.recvWindow = int64(sc.lim.streamWindow)
	st.declaredLen = -1
	st.respLen = -1
	return st
}

// release returns st to the pool; nothing refers to it any more.
func (st *serverStream) release() {
	st.req.Reset()
	st.trailers.Reset()
	*st = serverStream{req: st.req, trailers: st.trailers, recv: st.recv.reused()}
	streamPool.Put(st)
}

// isOpen: counted against the concurrent-stream limit (open or half
// closed, RFC 9113 5.1.2).
func (st *serverStream) isOpen() bool { return !st.reset && !(st.endSent && st.closedRemote) }

func (st *serverStream) closeRemoteLocked() {
	wasOpen := st.isOpen()
	st.closedRemote = true
	if wasOpen && !st.isOpen() {
		st.sc.open--
	}
}

func (st *serverStream) endSentLocked() {
	wasOpen := st.isOpen()
	st.endSent = true
	if r := st.sc.recentLocked(st.id); r.id == st.id {
		r.done = true // a reset from now on is not premature
	}
	if wasOpen && !st.isOpen() {
		st.sc.open--
	}
}

// abortLocked fails the stream's reads and writes and ends its context.
func (st *serverStream) abortLocked(err error) {
	if st.err == nil {
		st.err = err
	}
	if st.ctx != nil {
		st.ctx.Cancel(context.Canceled)
	}
	st.cond.Broadcast()
}

// creditLocked returns n read bytes to the stream's receive window, with
// a WINDOW_UPDATE once half the window is owed and more body may come.
func (st *serverStream) creditLocked(n int64) {
	sc := st.sc
	st.recvWindow += n
	st.recvUnacked += n
	if st.recvUnacked >= int64(sc.lim.streamWindow)/2 && !st.closedRemote && !st.reset && !sc.closed && !sc.closing {
		sc.wfr.WriteWindowUpdate(st.id, uint32(st.recvUnacked))
		st.recvUnacked = 0
		sc.pendingFrames++
		sc.signalWriter()
	}
}

// run is the stream's goroutine.
func (st *serverStream) run() {
	sc := st.sc
	sc.startNext()
	defer sc.handlers.Done()
	defer st.finish()
	sc.handler.ServeStream(st)
}

// finish closes what the handler left: an unfinished response is reset
// (INTERNAL_ERROR), a finished one whose request is still coming asks the
// client to stop (RST_STREAM NO_ERROR, RFC 9113 8.1); then st leaves the
// connection and goes back to the pool.
// A handler that panics has its stream reset like one that returned
// early, and its panic logged; the connection and its other streams go
// on.
func (st *serverStream) finish() {
	if p := recover(); p != nil {
		st.sc.srv.handlerPanicked(p)
	}
	sc := st.sc
	sc.mu.Lock()
	switch {
	case st.reset:
	case !st.endSent:
		sc.resetLocked(st, http2.ErrCodeInternal, true)
	case !st.closedRemote:
		sc.resetLocked(st, http2.ErrCodeNo, true)
	}
	sc.creditConnLocked(int64(st.recv.drop()))
	delete(sc.streams, st.id)
	if len(sc.streams) == 0 && sc.idle != nil && !sc.closed {
		sc.idle.Reset(sc.lim.idleTimeout)
	}
	sc.signalWriter()
	sc.maybeFinishDrainLocked()
	if st.ctx != nil {
		if st.ctx.reusable() && !sc.closed && len(sc.freeCtxs) < maxFreeCtxs {
			sc.freeCtxs = append(sc.freeCtxs, st.ctx)
		} else {
			st.ctx.Cancel(context.Canceled)
		}
	}
	sc.mu.Unlock()
	st.release()
}

// handlerPanicked logs a handler's panic, but for http.ErrAbortHandler,
// the panic that means to abort the response quietly. Out of line, as
// http1's: the log fields would grow every stream's deferred frame.
//
//go:noinline
func (s *Server) handlerPanicked(p any) {
	if s.Log == nil || p == http.ErrAbortHandler {
		return
	}
	buf := make([]byte, 16<<10)
	buf = buf[:runtime.Stack(buf, false)]
	s.Log.Error("http2 handler panic", zap.Any("panic", p), zap.ByteString("stack", buf))
}

// maxFreeCtxs bounds the contexts a connection keeps for reuse: what a
// client keeps in flight, up to a few hundred bytes each.
const maxFreeCtxs = 32

func (st *serverStream) RequestHeaders() *stream.HeaderMap { return &st.req }
func (st *serverStream) RequestBodyLength() int64          { return st.bodyLen }

func (st *serverStream) RequestTrailers() *stream.HeaderMap {
	st.sc.mu.Lock()
	defer st.sc.mu.Unlock()
	if !st.hasTrailers || st.recv.unread() > 0 || !st.closedRemote {
		return nil
	}
	return &st.trailers
}

func (st *serverStream) ReadBody(p []byte) (int, error) {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for {
		if st.recv.unread() > 0 {
			n := st.recv.read(p)
			st.creditLocked(int64(n))
			sc.creditConnLocked(int64(n))
			return n, nil
		}
		if st.err != nil {
			return 0, st.err
		}
		if st.closedRemote {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		st.cond.Wait()
	}
}

func (st *serverStream) WriteHeaders(h *stream.HeaderMap, endStream bool) error {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if err := st.writableLocked(); err != nil {
		return err
	}
	status, _ := h.Get(stream.Status)
	if len(status) != 3 {
		return errNoStatus // a response head without a valid :status is malformed (RFC 9113 8.3.2)
	}
	informational := status[0] == '1'
	if st.wroteHeaders && !informational {
		return errHeadersWritten
	}
	end := endStream && !informational
	respLen := int64(-1)
	if cl, ok := h.Get("content-length"); ok && !informational && !st.headRequest && string(status) != "304" {
		if n, ok := parseContentLength(viewString(cl)); ok {
			respLen = n
		}
	}
	if end && respLen > 0 {
		return st.bodyLengthLocked()
	}
	sc.encodeHeadersLocked(h, true)
	sc.queueHeadersLocked(st.id, sc.hbuf.Bytes(), end)
	if informational {
		sc.signalWriter()
		return nil
	}
	st.wroteHeaders = true
	st.respLen = respLen
	if end {
		st.endSentLocked()
		sc.signalWriter()
	}
	return nil
}

// bodyLengthLocked resets a stream whose response body disagrees with
// its content-length (RFC 9113 8.1.1 makes it malformed): the client
// gets RST_STREAM INTERNAL_ERROR, not a response of the wrong length.
func (st *serverStream) bodyLengthLocked() error {
	st.sc.resetLocked(st, http2.ErrCodeInternal, true)
	st.sc.signalWriter()
	return errBodyLength
}

// bodyWritableLocked: the stream takes body or trailers now (open, and
// its response head went out).
func (st *serverStream) bodyWritableLocked() error {
	if err := st.writableLocked(); err != nil {
		return err
	}
	if !st.wroteHeaders {
		return errNoHeaders
	}
	return nil
}

func (st *serverStream) WriteBody(p []byte, endStream bool) error {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if err := st.bodyWritableLocked(); err != nil {
		return err
	}
	if len(p) == 0 && !endStream {
		return nil
	}
	if st.respLen >= 0 {
		st.respSent += int64(len(p))
		if st.respSent > st.respLen || endStream && st.respSent != st.respLen {
			return st.bodyLengthLocked()
		}
	}
	for {
		// Send what the windows allow, wait for the rest.
		for st.err == nil && !sc.closed && len(p) > 0 && (st.sendWindow <= 0 || sc.sendWindow <= 0 || len(sc.pending) >= maxPending) {
			if len(sc.pending) > 0 {
				sc.signalWriter()
			}
			sc.wcond.Wait()
		}
		if err := st.writableLocked(); err != nil {
			return err
		}
		n := min(len(p), int(st.sendWindow), int(sc.sendWindow), sc.peerMaxFrame)
		last := n == len(p)
		sc.writeDataLocked(st.id, p[:n], last && endStream)
		st.sendWindow -= int64(n)
		sc.sendWindow -= int64(n)
		p = p[n:]
		if last {
			break
		}
	}
	if endStream {
		st.endSentLocked()
		sc.signalWriter()
	} else if len(sc.pending) >= maxPending/2 {
		sc.signalWriter()
	}
	return nil
}

func (st *serverStream) WriteTrailers(t *stream.HeaderMap) error {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if err := st.bodyWritableLocked(); err != nil {
		return err
	}
	if st.respLen >= 0 && st.respSent != st.respLen {
		return st.bodyLengthLocked()
	}
	sc.encodeHeadersLocked(t, false)
	sc.queueHeadersLocked(st.id, sc.hbuf.Bytes(), true)
	st.endSentLocked()
	sc.signalWriter()
	return nil
}

func (st *serverStream) Flush() error {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.err != nil {
		return st.err
	}
	sc.signalWriter()
	return nil
}

// resetCodes maps the protocol-neutral reasons to RST_STREAM codes.
var resetCodes = [...]http2.ErrCode{
	stream.ResetInternal: http2.ErrCodeInternal,
	stream.ResetCancel:   http2.ErrCodeCancel,
	stream.ResetProtocol: http2.ErrCodeProtocol,
	stream.ResetRefused:  http2.ErrCodeRefusedStream,
}

func (st *serverStream) Reset(reason stream.ResetReason) {
	code := http2.ErrCodeInternal
	if int(reason) < len(resetCodes) {
		code = resetCodes[reason]
	}
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.reset || (st.endSent && st.closedRemote) {
		return
	}
	if st.endSent && reason == stream.ResetCancel {
		// The response is complete (its END_STREAM is queued ahead of
		// the reset): what is cancelled is only the rest of the request,
		// which RFC 9113 section 8.1 asks for with NO_ERROR, so the client
		// keeps the answer as a success.
		code = http2.ErrCodeNo
	}
	sc.resetLocked(st, code, true)
	sc.signalWriter()
}

func (st *serverStream) Connection() *stream.ConnectionInfo { return st.sc.info }

func (st *serverStream) Upgrade() (net.Conn, []byte, error) {
	return nil, nil, stream.ErrUpgradeUnsupported
}

// Context is made on first use: most handlers of a fast path never ask.
// It is one the connection's earlier streams left quiet when there is one
// (finish), so that a request costs no context.
func (st *serverStream) Context() context.Context {
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.ctx == nil {
		if n := len(sc.freeCtxs); n > 0 {
			st.ctx = sc.freeCtxs[n-1]
			sc.freeCtxs[n-1] = nil
			sc.freeCtxs = sc.freeCtxs[:n-1]
		} else {
			st.ctx = &streamContext{values: sc.values}
		}
		if st.err != nil || st.reset {
			st.ctx.Cancel(context.Canceled)
		}
	}
	return st.ctx
}

func (st *serverStream) writableLocked() error {
	switch {
	case st.err != nil:
		return st.err
	case st.sc.closed || st.sc.closing:
		return errConnClosed
	case st.endSent:
		return errStreamClosed
	}
	return nil
}

// streamContext is a stream's context.Context. What ends (Done made on
// first use, Err, AfterFunc) is stream.Cancellable's. It is not pooled
// with the stream: when its stream ends, it is ended, unless nothing can
// be waiting for it (reusable), and then the connection's next stream
// that asks for a context gets it, as the connection manager reuses its
// own stream context.
type streamContext struct {
	stream.Cancellable
	values context.Context // nil: no values
	// doneTaken: someone has the Done channel (a context derived from
	// this one asks for it too) and may wait on it past the stream.
	doneTaken atomic.Bool
}

// Done is Cancellable's; whoever takes it keeps the context from reuse.
func (c *streamContext) Done() <-chan struct{} {
	c.doneTaken.Store(true)
	return c.Cancellable.Done()
}

// reusable: the context did not end, no function is registered on it
// (the connection manager stops its registration before its handler
// returns) and nobody has its Done channel, so nothing would see the
// next stream's end as this one's.
func (c *streamContext) reusable() bool { return !c.doneTaken.Load() && c.Quiet() }

func (c *streamContext) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *streamContext) Value(key any) any {
	if c.values == nil {
		return nil
	}
	return c.values.Value(key)
}
