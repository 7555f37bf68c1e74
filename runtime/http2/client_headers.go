package http2

import (
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// responseBlock validates a response head's (or its trailers') fields as
// the HPACK decoder emits them (RFC 9113 8.2, 8.3.2) into the stream's
// map. Decoding goes on after a problem so the connection's HPACK state
// stays in step; only the verdict is kept. A nil target decodes only (a
// stream we no longer track).
type responseBlock struct {
	target        *stream.HeaderMap
	trailers      bool
	limit, size   uint32
	tooLarge      bool
	malformed     string
	sawRegular    bool
	status        int
	contentLength int64
}

func (b *responseBlock) start(target *stream.HeaderMap, trailers bool, limit uint32) {
	*b = responseBlock{target: target, trailers: trailers, limit: limit, contentLength: -1}
}

func (b *responseBlock) add(f hpack.HeaderField) {
	b.size += f.Size()
	if b.size > b.limit {
		b.tooLarge = true
	}
	if b.target == nil || b.tooLarge || b.malformed != "" {
		return
	}
	if len(f.Name) > 0 && f.Name[0] == ':' {
		if b.trailers || b.sawRegular || f.Name != stream.Status || b.status != 0 {
			b.malformed = "pseudo-header " + f.Name + " out of place"
			return
		}
		v := f.Value
		if len(v) != 3 || v[0] < '1' || v[0] > '5' || v[1] < '0' || v[1] > '9' || v[2] < '0' || v[2] > '9' {
			b.malformed = "bad :status"
			return
		}
		b.status = int(v[0]-'0')*100 + int(v[1]-'0')*10 + int(v[2]-'0')
		b.target.Add(f.Name, f.Value)
		return
	}
	b.sawRegular = true
	if !validName(f.Name) {
		b.malformed = "invalid field name"
		return
	}
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		b.malformed = "invalid field value"
		return
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		b.malformed = "connection-specific field " + f.Name
		return
	case "content-length":
		if b.trailers {
			break
		}
		n, ok := parseContentLength(f.Value)
		if !ok || (b.contentLength >= 0 && n != b.contentLength) {
			b.malformed = "invalid content-length"
			return
		}
		if b.contentLength >= 0 {
			return // the same value again: one field is enough
		}
		b.contentLength = n
	}
	b.target.Add(f.Name, f.Value)
}

// validRequestName: a field name we may send (a token; upper case is
// lowered when encoding).
func validRequestName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// validRequestValue: no byte that could end or split a field (NUL, CR,
// LF, other controls but HTAB).
func validRequestValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
