package http2

import (
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// responseBlock is a response's head or trailers as the client decodes
// them (RFC 9113 8.3.2: :status is the one pseudo-header). A nil target
// decodes only (a stream we no longer track).
type responseBlock struct {
	fieldBlock
	status int
}

func (b *responseBlock) start(target *stream.HeaderMap, trailers bool, limit uint32) {
	b.status = 0
	b.fieldBlock.start(target, trailers, limit)
	b.discard = target == nil
}

func (b *responseBlock) add(f hpack.HeaderField) {
	if !b.count(f) {
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
	b.addRegular(f)
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
