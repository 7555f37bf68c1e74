package http2

import (
	"encoding/binary"
	"strconv"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// The client's send side follows the server's design (writer.go): frames
// are appended to pending under mu, and one writer goroutine takes the
// whole batch per wake-up and writes it with one system call.

func (cc *ClientConn) signalWriter() {
	select {
	case cc.wakeWriter <- struct{}{}:
	default:
	}
}

func (cc *ClientConn) writeLoop() {
	defer close(cc.writerDone)
	for range cc.wakeWriter {
		cc.mu.Lock()
		cc.pending, cc.out = cc.out[:0], cc.pending
		out, closed := cc.out, cc.closed
		cc.cond.Broadcast() // pending has room again
		cc.mu.Unlock()
		if len(out) > 0 && !closed {
			if _, err := cc.conn.Write(out); err != nil {
				cc.teardown(errLost)
				return
			}
		}
		if closed {
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
	cc.henc.WriteField(hpack.HeaderField{Name: stream.Method, Value: cc.str(method)})
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
	cc.henc.WriteField(hpack.HeaderField{Name: stream.Authority, Value: cc.str(authority)})
	if !connect {
		path, _ := h.Get(stream.Path)
		if len(path) == 0 {
			path = []byte("/")
		}
		cc.henc.WriteField(hpack.HeaderField{Name: stream.Path, Value: cc.str(path)})
	}
	cc.encodeFieldsLocked(h)
	if contentLength >= 0 {
		var tmp [20]byte
		cc.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: cc.str(strconv.AppendInt(tmp[:0], contentLength, 10))})
	}
}

func (cc *ClientConn) encodeTrailersLocked(h *stream.HeaderMap) {
	cc.hbuf.Reset()
	cc.encodeFieldsLocked(h)
}

func (cc *ClientConn) encodeFieldsLocked(h *stream.HeaderMap) {
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if len(name) > 0 && name[0] == ':' {
			continue
		}
		switch string(name) {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "content-length":
			continue
		case "te":
			if string(value) != "trailers" {
				continue
			}
		}
		cc.henc.WriteField(hpack.HeaderField{Name: cc.lowerStr(name), Value: cc.str(value)})
	}
}

// str is b as a string, shared with earlier equal strings of the
// connection (the HPACK encoder keeps its table's strings, so they are
// copies; repeated fields should not cost one each).
func (cc *ClientConn) str(b []byte) string {
	if s, ok := cc.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= 128 {
		if len(cc.strs) >= 512 {
			clear(cc.strs)
		}
		cc.strs[s] = s
	}
	return s
}

// lowerStr is str of a field name in lower case (HTTP/2 requires it; a
// map filled from net/http may carry canonical names).
func (cc *ClientConn) lowerStr(b []byte) string {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			var tmp [64]byte
			l := append(tmp[:0], b...)
			for i, c := range l {
				if 'A' <= c && c <= 'Z' {
					l[i] = c + ('a' - 'A')
				}
			}
			return cc.str(l)
		}
	}
	return cc.str(b)
}

// writeHeaderFramesLocked queues block as HEADERS and CONTINUATION frames
// no larger than the peer's SETTINGS_MAX_FRAME_SIZE.
func (cc *ClientConn) writeHeaderFramesLocked(id uint32, block []byte, endStream bool) {
	first := true
	for first || len(block) > 0 {
		n := min(len(block), cc.peerMaxFrame)
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
		cc.appendFrameHeader(typ, flags, id, len(frag))
		cc.pending = append(cc.pending, frag...)
		first = false
	}
}

// writeDataLocked queues one DATA frame and takes it from the windows;
// the caller has checked them.
func (cc *ClientConn) writeDataLocked(s *ClientStream, p []byte, endStream bool) {
	var flags http2.Flags
	if endStream {
		flags = http2.FlagDataEndStream
	}
	cc.appendFrameHeader(http2.FrameData, flags, s.id, len(p))
	cc.pending = append(cc.pending, p...)
	s.sendWindow -= int64(len(p))
	cc.sendWindow -= int64(len(p))
}

func (cc *ClientConn) appendFrameHeader(t http2.FrameType, flags http2.Flags, id uint32, length int) {
	var h [9]byte
	h[0], h[1], h[2] = byte(length>>16), byte(length>>8), byte(length)
	h[3], h[4] = byte(t), byte(flags)
	binary.BigEndian.PutUint32(h[5:], id&(1<<31-1))
	cc.pending = append(cc.pending, h[:]...)
}
