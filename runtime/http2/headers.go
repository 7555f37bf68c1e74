package http2

import (
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// headerBlock validates a request's (or its trailers') fields as the HPACK
// decoder emits them (RFC 9113 8.2 and 8.3) and adds the valid ones to
// the stream's map. Decoding goes on after a problem, so that the
// connection's HPACK state stays in step; only the verdict is kept.
type headerBlock struct {
	target   *stream.HeaderMap
	trailers bool
	limit    uint32
	size     uint32
	discard  bool // decode only (a refused or closed stream)

	malformed     string // why the message is malformed; "" when it is not
	tooLarge      bool
	sawRegular    bool
	pseudo        uint8 // bits of pseudoBit
	method        []byte
	path          []byte
	contentLength int64
}

const (
	pseudoMethod uint8 = 1 << iota
	pseudoScheme
	pseudoAuthority
	pseudoPath
)

func (b *headerBlock) start(target *stream.HeaderMap, trailers bool, limit uint32) {
	*b = headerBlock{target: target, trailers: trailers, limit: limit, contentLength: -1}
}

func (b *headerBlock) add(f hpack.HeaderField) {
	b.size += f.Size()
	if b.size > b.limit {
		b.tooLarge = true
	}
	if b.discard || b.tooLarge || b.malformed != "" {
		return
	}
	if len(f.Name) > 0 && f.Name[0] == ':' {
		b.addPseudo(f)
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
		// Connection-specific fields are malformed in HTTP/2 (8.2.2).
		b.malformed = "connection-specific field " + f.Name
		return
	case "te":
		if f.Value != "trailers" {
			b.malformed = "te other than trailers"
			return
		}
	case "content-length":
		if b.trailers {
			break
		}
		n, ok := parseContentLength(f.Value)
		if !ok || (b.contentLength >= 0 && n != b.contentLength) {
			b.malformed = "invalid content-length"
			return
		}
		b.contentLength = n
	}
	b.target.Add(f.Name, f.Value)
}

func (b *headerBlock) addPseudo(f hpack.HeaderField) {
	if b.trailers || b.sawRegular {
		b.malformed = "pseudo-header in trailers or after a regular field"
		return
	}
	var bit uint8
	switch f.Name {
	case stream.Method:
		bit = pseudoMethod
	case stream.Scheme:
		bit = pseudoScheme
	case stream.Authority:
		bit = pseudoAuthority
	case stream.Path:
		bit = pseudoPath
	default:
		// :status, and pseudo-headers this server does not know
		// (:protocol is not offered: no SETTINGS_ENABLE_CONNECT_PROTOCOL).
		b.malformed = "unknown or response pseudo-header " + f.Name
		return
	}
	if b.pseudo&bit != 0 {
		b.malformed = "repeated " + f.Name
		return
	}
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		b.malformed = "invalid value of " + f.Name
		return
	}
	b.pseudo |= bit
	b.target.Add(f.Name, f.Value)
	switch bit {
	case pseudoMethod:
		b.method, _ = b.target.Get(stream.Method)
	case pseudoPath:
		b.path, _ = b.target.Get(stream.Path)
	}
}

// requestComplete checks the pseudo-headers a request needs (8.3.1):
// CONNECT has :authority and neither :scheme nor :path; any other method
// has :method, :scheme and a non-empty :path.
func (b *headerBlock) requestComplete() bool {
	if b.discard || b.tooLarge {
		return true
	}
	if b.pseudo&pseudoMethod == 0 {
		return false
	}
	if string(b.method) == "CONNECT" {
		return b.pseudo == pseudoMethod|pseudoAuthority
	}
	return b.pseudo&(pseudoScheme|pseudoPath) == pseudoScheme|pseudoPath && len(b.path) > 0
}

// validName: a token in lower case (8.2.1: upper case is malformed).
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' || !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

func parseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
