package http2

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// frameQueue is the send side both connections embed (the server's
// serverConn and the client's ClientConn): frames are appended to
// pending under the connection's mu, and the connection's one writer
// goroutine takes the whole batch per wake-up (takeLocked) and hands it
// to the kernel in one Write: one system call per batch, not per frame.
// DATA and HEADERS are framed here rather than by the Framer, whose
// writes copy the payload into a buffer of their own first; control
// frames go through wfr, which appends to pending too.
type frameQueue struct {
	pending       []byte // frames queued for the writer
	out           []byte // the writer's batch being written
	pendingFrames int    // frames in pending (the server's flood limits count them)
	wakeWriter    chan struct{}
	writerDone    chan struct{}
	wfr           *http2.Framer // writes control frames into pending
	henc          *hpack.Encoder
	hbuf          bytes.Buffer
	strs          map[string]string // interned field strings (str)
	uniqueNamed   uint8             // uniquePerMessage fields already indexed once
	peerMaxFrame  int               // the peer's SETTINGS_MAX_FRAME_SIZE
}

func (q *frameQueue) init() {
	q.pending = make([]byte, 0, 16<<10)
	q.out = make([]byte, 0, 16<<10)
	q.wakeWriter = make(chan struct{}, 1)
	q.writerDone = make(chan struct{})
	q.wfr = http2.NewFramer(q, nil)
	q.henc = hpack.NewEncoder(&q.hbuf)
	q.strs = make(map[string]string)
	q.peerMaxFrame = defaultFrameSize
}

// Write lets wfr append control frames into pending (under mu).
func (q *frameQueue) Write(p []byte) (int, error) {
	q.pending = append(q.pending, p...)
	return len(p), nil
}

// signalWriter wakes the writer without blocking (under mu).
func (q *frameQueue) signalWriter() {
	select {
	case q.wakeWriter <- struct{}{}:
	default:
	}
}

// applyPeerSetting applies a peer's setting that shapes what we send
// (the HPACK table it keeps, the frames it takes) and reports whether s
// was one of those.
func (q *frameQueue) applyPeerSetting(s http2.Setting) bool {
	switch s.ID {
	case http2.SettingHeaderTableSize:
		q.henc.SetMaxDynamicTableSizeLimit(s.Val)
	case http2.SettingMaxFrameSize:
		q.peerMaxFrame = int(s.Val)
	default:
		return false
	}
	return true
}

// takeLocked hands the writer everything queued: pending becomes the
// batch to write and the previous batch's buffer the new pending, so the
// two buffers are reused and nothing is copied.
func (q *frameQueue) takeLocked() []byte {
	q.pending, q.out = q.out[:0], q.pending
	q.pendingFrames = 0
	return q.out
}

// queueHeadersLocked queues block as HEADERS and CONTINUATION frames no
// larger than the peer's SETTINGS_MAX_FRAME_SIZE.
func (q *frameQueue) queueHeadersLocked(id uint32, block []byte, endStream bool) {
	first := true
	for first || len(block) > 0 {
		n := min(len(block), q.peerMaxFrame)
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
		q.appendFrameHeader(typ, flags, id, len(frag))
		q.pending = append(q.pending, frag...)
		q.pendingFrames++
		first = false
	}
}

// queueDataLocked queues one DATA frame; the caller has checked the
// windows and the frame size.
func (q *frameQueue) queueDataLocked(id uint32, p []byte, endStream bool) {
	var flags http2.Flags
	if endStream {
		flags = http2.FlagDataEndStream
	}
	q.appendFrameHeader(http2.FrameData, flags, id, len(p))
	q.pending = append(q.pending, p...)
	q.pendingFrames++
}

// appendFrameHeader writes the 9-byte frame header (RFC 9113 4.1).
func (q *frameQueue) appendFrameHeader(t http2.FrameType, flags http2.Flags, id uint32, length int) {
	var h [9]byte
	h[0], h[1], h[2] = byte(length>>16), byte(length>>8), byte(length)
	h[3], h[4] = byte(t), byte(flags)
	binary.BigEndian.PutUint32(h[5:], id&(1<<31-1))
	q.pending = append(q.pending, h[:]...)
}

// encodeFieldLocked HPACK-encodes one field into hbuf.
func (q *frameQueue) encodeFieldLocked(name string, value []byte) {
	q.henc.WriteField(hpack.HeaderField{Name: name, Value: q.str(value)})
}

// encodeFieldsLocked HPACK-encodes h's regular fields into hbuf, names in
// lower case (HTTP/2 requires it; a map filled from net/http may carry
// canonical names), without pseudo-headers (the caller writes the ones
// its message has, first) and without the connection-specific fields
// HTTP/2 forbids (RFC 9113 8.2.2): the codec owns framing. A request also
// drops Host (:authority says it), content-length (the codec writes the
// length it sends) and a TE other than "trailers".
func (q *frameQueue) encodeFieldsLocked(h *stream.HeaderMap, request bool) {
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if sentRegular(name, value, request) {
			q.writeFieldLocked(name, value)
		}
	}
}

// writeFieldLocked HPACK-encodes one field, its name in lower case.
//
// A field whose value is new on every message (a request id, a trace
// context) is indexed once per connection, so that its name has an entry
// in both dynamic tables, and from then on goes as a literal never
// indexed that refers to that name: indexing each new value would only
// push the fields that do repeat out of both tables (HPACK evicts the
// oldest first, used or not), and since the encoder keeps nothing of a
// field it does not index, the value needs no string of its own (its
// bytes are read before WriteField returns).
func (q *frameQueue) writeFieldLocked(name, value []byte) {
	if k := uniquePerMessage(name); k > 0 {
		if q.uniqueNamed&k != 0 {
			q.henc.WriteField(hpack.HeaderField{Name: q.lowerStr(name), Value: viewString(value), Sensitive: true})
			return
		}
		q.uniqueNamed |= k
	}
	q.henc.WriteField(hpack.HeaderField{Name: q.lowerStr(name), Value: q.str(value)})
}

// uniquePerMessage reports, as a bit of frameQueue.uniqueNamed, the
// fields whose values a proxy sees once: the request id it stamps on
// every request and W3C trace context; 0 for any other.
func uniquePerMessage(name []byte) uint8 {
	switch {
	case bytes.EqualFold(name, []byte("x-request-id")):
		return 1
	case bytes.EqualFold(name, []byte("traceparent")):
		return 2
	}
	return 0
}

// sentRegular says whether a field of a map goes out as a regular field
// (encodeFieldsLocked).
func sentRegular(name, value []byte, request bool) bool {
	if len(name) > 0 && name[0] == ':' {
		return false
	}
	switch string(name) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return false
	case "host", "content-length":
		return !request
	case "te":
		return !request || string(value) == "trailers"
	}
	return true
}

// str is b as a string, shared with earlier equal strings of the
// connection: the HPACK encoder keeps the strings of its dynamic table,
// so they must be copies, and repeated fields (the same content-type,
// server, status) should not cost an allocation each.
func (q *frameQueue) str(b []byte) string {
	if s, ok := q.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= 128 {
		if len(q.strs) >= 512 {
			clear(q.strs)
		}
		q.strs[s] = s
	}
	return s
}

// lowerStr is str of a field name in lower case.
func (q *frameQueue) lowerStr(b []byte) string {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			var tmp [64]byte
			l := append(tmp[:0], b...)
			for i, c := range l {
				if 'A' <= c && c <= 'Z' {
					l[i] = c + ('a' - 'A')
				}
			}
			return q.str(l)
		}
	}
	return q.str(b)
}
