package http2

import (
	"errors"
	"net"
	"runtime"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

var (
	errHeadersWritten = errors.New("http2: response headers already written")
	errNoHeaders      = errors.New("http2: body or trailers before the response headers")
	errNoStatus       = errors.New("http2: response headers without a three-digit :status")
	errBodyLength     = errors.New("http2: response body does not match its content-length; stream reset")
)

// writeLoop is the connection's only socket writer. Each wake-up takes
// every frame queued since the last one (HEADERS, DATA and control frames
// of all streams, in the order they were queued) and hands them to the
// kernel in one Write (frameQueue).
//
// Woken, it first lets the goroutines already runnable go before it
// (runtime.Gosched): the handler that woke it made it the next to run,
// and without the yield it would write that one response while the
// connection's other handlers, whose upstreams answered in the same poll,
// wait behind it to queue theirs, each then costing a write of its own.
// After the yield one write carries what they all queued, as nginx sends
// a connection's output once per pass of its event loop (h2load -c16
// -m10, one core: CPU per request -17 %). With nothing else runnable the
// yield returns at once.
func (sc *serverConn) writeLoop() {
	defer close(sc.writerDone)
	for range sc.wakeWriter {
		runtime.Gosched()
		sc.mu.Lock()
		out := sc.takeLocked()
		sc.pendingCtrl = 0
		closing, closed := sc.closing, sc.closed
		if len(out) > 0 && !closing {
			// Under mu: a close starting meanwhile sets its own deadline
			// after this one.
			sc.armWriteDeadline()
		}
		sc.wcond.Broadcast() // pending has room again
		sc.mu.Unlock()
		if len(out) > 0 {
			if _, err := sc.conn.Write(out); err != nil {
				sc.mu.Lock()
				if sc.err == nil {
					sc.err = err
				}
				sc.closed = true
				for _, st := range sc.streams {
					st.abortLocked(errConnClosed)
				}
				sc.wcond.Broadcast()
				sc.mu.Unlock()
				sc.conn.Close() // the reader's next read fails
				return
			}
		}
		if closed {
			return
		}
		if closing {
			sc.mu.Lock()
			left := len(sc.pending)
			sc.mu.Unlock()
			if left > 0 {
				sc.signalWriter()
				continue
			}
			// The final GOAWAY is out: no more writes; the peer gets
			// GoAwayTimeout to read it and close, then the reader stops.
			if cw, ok := sc.conn.(interface{ CloseWrite() error }); ok {
				if _, isTCP := sc.conn.(*net.TCPConn); isTCP {
					cw.CloseWrite()
				}
			}
			sc.conn.SetReadDeadline(time.Now().Add(sc.lim.goAwayTimeout))
			return
		}
	}
}

// armWriteDeadline makes sure the write about to start has at least half
// of WriteTimeout before it fails: the deadline is moved only when less
// than that is left, not before every write (each move is a timer's).
// Called by the writer, under mu. A closing connection's deadline is
// GoAwayTimeout's, set by startCloseLocked.
func (sc *serverConn) armWriteDeadline() {
	now := time.Now()
	if sc.writeDeadline.Sub(now) < sc.lim.writeTimeout/2 {
		sc.writeDeadline = now.Add(sc.lim.writeTimeout)
		sc.conn.SetWriteDeadline(sc.writeDeadline)
	}
}

// encodeHeadersLocked HPACK-encodes a response head (its :status first)
// or trailers into hbuf; request pseudo-headers and connection-specific
// fields are dropped (encodeFieldsLocked).
func (sc *serverConn) encodeHeadersLocked(h *stream.HeaderMap, head bool) {
	sc.hbuf.Reset()
	if head {
		status, _ := h.Get(stream.Status)
		sc.encodeFieldLocked(stream.Status, status)
	}
	sc.encodeFieldsLocked(h, false)
}

// writeDataLocked queues one DATA frame; the caller has checked the
// windows and the frame size.
func (sc *serverConn) writeDataLocked(id uint32, p []byte, endStream bool) {
	sc.queueDataLocked(id, p, endStream)
	sc.dataSent++
}
