package proxy

import (
	"encoding/hex"
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
		h.AddBytes(xRequestID, x.reqID)
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
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
}
