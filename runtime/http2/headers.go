package http2

import (
	"errors"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// errHeaderFlood: a header block past its limit, encoded (a CONTINUATION
// flood or an HPACK bomb); the connection ends with ENHANCE_YOUR_CALM.
var errHeaderFlood = http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)

// decodeHeaderBlock decodes f's header block and the CONTINUATION frames
// after it with d, calling emit with each field (the reader's fieldBlock);
// both sides' readers decode this way. More than limit bytes encoded is
// errHeaderFlood. between (nil for none) runs after each CONTINUATION
// is read, to stop early. A connection error is an http2.ConnectionError
// with its RFC 9113 code; a failed read is returned as it is.
func decodeHeaderBlock(r *frameReader, d *hpackDecoder, f *headersFrame, limit int, between func(frag []byte, ended bool) error, emit func(name, value []byte)) error {
	id := f.StreamID
	block := f.HeaderBlockFragment()
	if len(block) > limit {
		return errHeaderFlood
	}
	if !f.HeadersEnded() {
		// The block's fragments are decoded whole: gather them (a block
		// in one frame, the usual case, is decoded where it was read).
		d.block = append(d.block[:0], block...)
		for ended := false; !ended; {
			// The Framer's order check makes anything but a
			// CONTINUATION of this stream a connection error (6.10).
			_, cf, err := r.next()
			if err != nil {
				if errors.Is(err, http2.ErrFrameTooLarge) {
					return http2.ConnectionError(http2.ErrCodeFrameSize)
				}
				return err // a ConnectionError of the Framer's, or the read's
			}
			if cf == nil || cf.Type != http2.FrameContinuation || cf.StreamID != id {
				return http2.ConnectionError(http2.ErrCodeProtocol) // interrupted block (6.10)
			}
			var frag []byte
			frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
			if len(d.block)+len(frag) > limit {
				return errHeaderFlood
			}
			d.block = append(d.block, frag...)
			if between != nil {
				if err := between(frag, ended); err != nil {
					return err
				}
			}
		}
		block = d.block
		if cap(d.block) > 64<<10 {
			d.block = nil // a large block's buffer is not kept
		}
	}
	if err := d.decode(block, emit); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	return nil
}

// fieldBlock is what decoding a header block (a request's or a
// response's head, or trailers) on either side of a connection shares: the
// decoded size against the limit, and the checks of regular fields (RFC
// 9113 8.2), adding the valid ones to the stream's map. Decoding goes on
// after a problem, so that the connection's HPACK state stays in step;
// only the verdict is kept.
type fieldBlock struct {
	target        *stream.HeaderMap
	trailers      bool
	limit, size   uint32
	discard       bool   // decode only (a refused, closed or untracked stream)
	malformed     string // why the message is malformed; "" when it is not
	tooLarge      bool
	sawRegular    bool
	contentLength int64
}

func (b *fieldBlock) start(target *stream.HeaderMap, trailers bool, limit uint32) {
	*b = fieldBlock{target: target, trailers: trailers, limit: limit, contentLength: -1}
}

// count adds f to the block's size and says whether f is still to be
// checked (nothing is wrong yet and the block is kept).
func (b *fieldBlock) count(f hpack.HeaderField) bool {
	b.size += f.Size()
	if b.size > b.limit {
		b.tooLarge = true
	}
	return !b.discard && !b.tooLarge && b.malformed == ""
}

// addRegular checks a regular field and adds it to the map.
func (b *fieldBlock) addRegular(f hpack.HeaderField) {
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

// headerBlock is a request's head or trailers as the server decodes them.
type headerBlock struct {
	fieldBlock
	pseudo uint8 // bits of pseudoBit
	method []byte
	path   []byte
}

const (
	pseudoMethod uint8 = 1 << iota
	pseudoScheme
	pseudoAuthority
	pseudoPath
)

func (b *headerBlock) start(target *stream.HeaderMap, trailers bool, limit uint32) {
	*b = headerBlock{}
	b.fieldBlock.start(target, trailers, limit)
}

func (b *headerBlock) add(f hpack.HeaderField) {
	if !b.count(f) {
		return
	}
	if len(f.Name) > 0 && f.Name[0] == ':' {
		b.addPseudo(f)
		return
	}
	if f.Name == "te" && f.Value != "trailers" {
		b.sawRegular = true
		b.malformed = "te other than trailers"
		return
	}
	b.addRegular(f)
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
