package http2

import (
	"encoding/binary"
	"errors"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

var (
	errHeadersWritten = errors.New("http2: response headers already written")
	errNoHeaders      = errors.New("http2: body or trailers before the response headers")
	errNoStatus       = errors.New("http2: response headers without a three-digit :status")
)

// signalWriter wakes the writer without blocking (under mu).
func (sc *serverConn) signalWriter() {
	select {
	case sc.wakeWriter <- struct{}{}:
	default:
	}
}

// writeLoop is the connection's only socket writer. Each wake-up takes
// every frame queued since the last one (HEADERS, DATA and control frames
// of all streams, in the order they were queued) and hands them to the
// kernel in one Write: one system call per batch, not per frame.
func (sc *serverConn) writeLoop() {
	defer close(sc.writerDone)
	for range sc.wakeWriter {
		sc.mu.Lock()
		sc.pending, sc.out = sc.out[:0], sc.pending
		sc.pendingFrames, sc.pendingCtrl = 0, 0
		out, closing, closed := sc.out, sc.closing, sc.closed
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

// encodeHeadersLocked HPACK-encodes h into hbuf. Connection-specific
// fields are dropped (the codec owns framing; RFC 9113 8.2.2), and so are
// request pseudo-headers in a response; only a response's head keeps
// :status.
func (sc *serverConn) encodeHeadersLocked(h *stream.HeaderMap, head bool) {
	sc.hbuf.Reset()
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if len(name) > 0 && name[0] == ':' {
			if !head || string(name) != stream.Status {
				continue
			}
		}
		switch string(name) {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			continue
		}
		sc.henc.WriteField(hpack.HeaderField{Name: sc.str(name), Value: sc.str(value)})
	}
}

// str is b as a string, shared with earlier equal strings of the
// connection: the HPACK encoder keeps the strings of its dynamic table,
// so they must be copies, and repeated fields (the same content-type,
// server, status) should not cost an allocation each.
func (sc *serverConn) str(b []byte) string {
	if s, ok := sc.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= 128 {
		if len(sc.strs) >= 512 {
			clear(sc.strs)
		}
		sc.strs[s] = s
	}
	return s
}

// writeHeaderFramesLocked queues block as HEADERS and CONTINUATION frames
// no larger than the peer's SETTINGS_MAX_FRAME_SIZE.
func (sc *serverConn) writeHeaderFramesLocked(id uint32, block []byte, endStream bool) {
	first := true
	for first || len(block) > 0 {
		n := min(len(block), sc.peerMaxFrame)
		frag := block[:n]
		block = block[n:]
		var flags http2.Flags
		typ := http2.FrameContinuation
		if first {
			typ = http2.FrameHeaders
			if endStream {
				flags |= http2.FlagHeadersEndStream
			}
		}
		if len(block) == 0 {
			flags |= http2.FlagHeadersEndHeaders
		}
		sc.appendFrameHeader(typ, flags, id, len(frag))
		sc.pending = append(sc.pending, frag...)
		sc.pendingFrames++
		first = false
	}
}

// writeDataLocked queues one DATA frame; the caller has checked the
// windows and the frame size.
func (sc *serverConn) writeDataLocked(id uint32, p []byte, endStream bool) {
	var flags http2.Flags
	if endStream {
		flags = http2.FlagDataEndStream
	}
	sc.appendFrameHeader(http2.FrameData, flags, id, len(p))
	sc.pending = append(sc.pending, p...)
	sc.pendingFrames++
	sc.dataSent++
}

// appendFrameHeader writes the 9-byte frame header (RFC 9113 4.1). DATA
// and HEADERS are framed here rather than by the Framer, whose writes
// copy the payload into a buffer of their own first.
func (sc *serverConn) appendFrameHeader(t http2.FrameType, flags http2.Flags, id uint32, length int) {
	var h [9]byte
	h[0], h[1], h[2] = byte(length>>16), byte(length>>8), byte(length)
	h[3], h[4] = byte(t), byte(flags)
	binary.BigEndian.PutUint32(h[5:], id&(1<<31-1))
	sc.pending = append(sc.pending, h[:]...)
}
