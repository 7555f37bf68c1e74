package proxy

import (
	"math/rand/v2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

var xRequestID = []byte("x-request-id")

// setRequestID settles the stream's x-request-id: the client's, else a
// new one set on the request. The stream keeps its own copy of the bytes
// (a filter may replace the whole map) and makes a string of it only when
// something reads one (requestID): the plain path never does.
func (x *activeStream) setRequestID(h *stream.HeaderMap) {
	id, found := h.Get("x-request-id")
	if len(id) > 0 {
		x.reqID = append(x.reqIDBuf[:0], id...)
		return
	}
	formatRequestID(&x.reqIDBuf)
	x.reqID = x.reqIDBuf[:]
	if found {
		h.SetBytes(xRequestID, x.reqID) // replaces an empty one
	} else {
		// Hex digits and dashes of ours: nothing for a writer to check.
		h.AddChecked("x-request-id", x.reqID)
	}
}

// requestID is the stream's x-request-id as a string, made once.
func (x *activeStream) requestID() string {
	if x.reqIDStr == "" && len(x.reqID) > 0 {
		x.reqIDStr = string(x.reqID)
	}
	return x.reqIDStr
}

// formatRequestID writes a random UUIDv4 for x-request-id into out. It
// needs to be unique, not secret, so the fast per-goroutine generator
// serves.
func formatRequestID(out *[36]byte) {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	// Two digits a byte from a table, at fixed places: hex.Encode's
	// digit at a time was about 340 instructions a request.
	putHex(out, 0, b[0])
	putHex(out, 2, b[1])
	putHex(out, 4, b[2])
	putHex(out, 6, b[3])
	out[8] = '-'
	putHex(out, 9, b[4])
	putHex(out, 11, b[5])
	out[13] = '-'
	putHex(out, 14, b[6])
	putHex(out, 16, b[7])
	out[18] = '-'
	putHex(out, 19, b[8])
	putHex(out, 21, b[9])
	out[23] = '-'
	for i := range 6 {
		putHex(out, 24+2*i, b[10+i])
	}
}

func putHex(out *[36]byte, at int, c byte) {
	d := hexPairs[c]
	out[at], out[at+1] = d[0], d[1]
}

// hexPairs is each byte's two lower-case hex digits.
var hexPairs = func() (t [256][2]byte) {
	const digits = "0123456789abcdef"
	for c := range t {
		t[c] = [2]byte{digits[c>>4], digits[c&0xf]}
	}
	return t
}()
