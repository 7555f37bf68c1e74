package proxy

import (
	"math/rand/v2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

var xRequestID = []byte("x-request-id")

// setRequestID settles the stream's x-request-id: the client's, else a
// new one set on the request. The stream keeps its own copy of the bytes
// (a filter may replace the whole map) and makes a string of it only when
// something reads one (requestID): the plain path never does. maybe
// says the request may have one (sanitizeRequestHeaders saw the name);
// false skips the lookup.
func (x *activeStream) setRequestID(h *stream.HeaderMap, maybe bool) {
	var id []byte
	var found bool
	if maybe {
		id, found = h.Get("x-request-id")
	}
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
		h.AddChecked(xRequestID, x.reqID)
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
	hi, lo := rand.Uint64(), rand.Uint64()
	// The UUID's bytes are hi's then lo's, low byte first; the version
	// (4) goes in byte 6's high nibble, the variant (binary 10) in byte
	// 8's top bits, set in the words themselves: copying them out byte
	// by byte first was some 70 instructions a request.
	hi = hi&^(0xf0<<48) | 0x40<<48
	lo = lo&^0xc0 | 0x80
	// Two digits a byte from a table, at fixed places: hex.Encode's
	// digit at a time was about 340 instructions a request.
	putHex(out, 0, byte(hi))
	putHex(out, 2, byte(hi>>8))
	putHex(out, 4, byte(hi>>16))
	putHex(out, 6, byte(hi>>24))
	out[8] = '-'
	putHex(out, 9, byte(hi>>32))
	putHex(out, 11, byte(hi>>40))
	out[13] = '-'
	putHex(out, 14, byte(hi>>48))
	putHex(out, 16, byte(hi>>56))
	out[18] = '-'
	putHex(out, 19, byte(lo))
	putHex(out, 21, byte(lo>>8))
	out[23] = '-'
	for i := range 6 {
		putHex(out, 24+2*i, byte(lo>>(16+8*i)))
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
