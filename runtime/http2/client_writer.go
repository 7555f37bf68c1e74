package http2

import (
	"strconv"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// writeLoop is the client connection's only socket writer: one Write per
// batch of frames (frameQueue), as the server's.
func (cc *ClientConn) writeLoop() {
	defer close(cc.writerDone)
	for range cc.wakeWriter {
		cc.mu.Lock()
		out := cc.takeLocked()
		closed := cc.closed
		cc.cond.Broadcast() // pending has room again
		cc.mu.Unlock()
		if len(out) > 0 {
			// Once closed, only a queued GOAWAY's batch still goes out
			// (closeLocked bounded it with a write deadline); a socket
			// closed already fails the write at once.
			if _, err := cc.conn.Write(out); err != nil {
				cc.teardown(errLost)
				cc.conn.Close()
				return
			}
		}
		if closed {
			cc.conn.Close()
			return
		}
	}
}

// encodeRequestLocked HPACK-encodes a request head into hbuf: the
// pseudo-headers first (:scheme from the options when the map has none),
// then the fields in lower case, without the connection-specific ones
// HTTP/2 forbids (RFC 9113 8.2.2) and Host (:authority says it).
func (cc *ClientConn) encodeRequestLocked(h *stream.HeaderMap, contentLength int64) {
	cc.hbuf.Reset()
	method, _ := h.Get(stream.Method)
	connect := string(method) == "CONNECT" // :authority only (RFC 9113 8.5)
	cc.encodeFieldLocked(stream.Method, method)
	if !connect {
		scheme := cc.opts.Scheme
		if v, ok := h.Get(stream.Scheme); ok {
			scheme = cc.str(v)
		}
		cc.henc.WriteField(hpack.HeaderField{Name: stream.Scheme, Value: scheme})
	}
	authority, ok := h.Get(stream.Authority)
	if !ok {
		authority, _ = h.Get("host")
	}
	cc.encodeFieldLocked(stream.Authority, authority)
	if !connect {
		path, _ := h.Get(stream.Path)
		if len(path) == 0 {
			path = []byte("/")
		}
		cc.encodeFieldLocked(stream.Path, path)
	}
	cc.encodeFieldsLocked(h, true)
	if contentLength >= 0 {
		var tmp [20]byte
		cc.encodeFieldLocked("content-length", strconv.AppendInt(tmp[:0], contentLength, 10))
	}
}

func (cc *ClientConn) encodeTrailersLocked(h *stream.HeaderMap) {
	cc.hbuf.Reset()
	cc.encodeFieldsLocked(h, true)
}

// writeDataLocked queues one DATA frame and takes it from the windows;
// the caller has checked them.
func (cc *ClientConn) writeDataLocked(s *ClientStream, p []byte, endStream bool) {
	cc.queueDataLocked(s.id, p, endStream)
	s.sendWindow -= int64(len(p))
	cc.sendWindow -= int64(len(p))
}
