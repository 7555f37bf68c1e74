package http2

import (
	"runtime"
	"strconv"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// writeLoop is the client connection's only socket writer: one Write per
// batch of frames (frameQueue), as the server's. Woken, it yields first,
// as the server's does, so that the requests their owners open in the
// same round of the run queue (the streams of one downstream read, each
// started as the one before waits) share its write.
func (cc *ClientConn) writeLoop() {
	defer close(cc.writerDone)
	for range cc.wakeWriter {
		runtime.Gosched()
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

// headField is one field of a request head as it goes out.
type headField struct{ name, value []byte }

var (
	methodName        = []byte(stream.Method)
	schemeName        = []byte(stream.Scheme)
	authorityName     = []byte(stream.Authority)
	pathName          = []byte(stream.Path)
	contentLengthName = []byte("content-length")
	rootPath          = []byte("/")
)

// requestHeadLocked lists a request head's fields as they are sent into
// cc.head and returns the size of that header list as SETTINGS_MAX_HEADER_
// LIST_SIZE counts it (RFC 9113 6.5.2: names and values plus 32 a
// field): the pseudo-headers first (:scheme from the options when the map
// has none; CONNECT has :authority only, RFC 9113 8.5), then the regular
// fields without the connection-specific ones HTTP/2 forbids (RFC 9113
// 8.2.2) and Host (:authority says it), then the content-length the
// codec sends. Nothing is encoded yet: a list the peer refuses must not
// touch the HPACK state.
func (cc *ClientConn) requestHeadLocked(h *stream.HeaderMap, contentLength int64) uint64 {
	fields := cc.head[:0]
	method, _ := h.Get(stream.Method)
	connect := string(method) == "CONNECT"
	fields = append(fields, headField{methodName, method})
	if !connect {
		scheme, ok := h.Get(stream.Scheme)
		if !ok {
			scheme = cc.scheme
		}
		fields = append(fields, headField{schemeName, scheme})
	}
	authority, ok := h.Get(stream.Authority)
	if !ok {
		authority, _ = h.Get("host")
	}
	fields = append(fields, headField{authorityName, authority})
	if !connect {
		path, _ := h.Get(stream.Path)
		if len(path) == 0 {
			path = rootPath
		}
		fields = append(fields, headField{pathName, path})
	}
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if sentRegular(name, value, true) {
			fields = append(fields, headField{name, value})
		}
	}
	if contentLength >= 0 {
		fields = append(fields, headField{contentLengthName, strconv.AppendInt(cc.lengthBuf[:0], contentLength, 10)})
	}
	var size uint64
	for _, f := range fields {
		size += uint64(len(f.name) + len(f.value) + 32)
	}
	cc.head = fields
	return size
}

// encodeRequestLocked HPACK-encodes the head requestHeadLocked listed
// into hbuf, names in lower case.
func (cc *ClientConn) encodeRequestLocked() {
	cc.hbuf.Reset()
	for _, f := range cc.head {
		cc.writeFieldLocked(f.name, f.value)
	}
	clear(cc.head) // holds no caller's bytes past the request
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
