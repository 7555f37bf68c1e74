package stream

import (
	"bytes"
	"iter"
)

// Tokens yields the elements of a comma-separated field value (RFC 9110
// section 5.6.1), each trimmed of optional whitespace; empty elements are
// skipped. The HTTP/1.1 codec and the proxy's Connection handling both
// walk lists with it, without allocating.
func Tokens(list []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(list) > 0 {
			var tok []byte
			if c := bytes.IndexByte(list, ','); c >= 0 {
				tok, list = list[:c], list[c+1:]
			} else {
				tok, list = list, nil
			}
			if tok = TrimOWS(tok); len(tok) > 0 && !yield(tok) {
				return
			}
		}
	}
}

// TrimOWS is b without leading and trailing SP and HTAB (RFC 9110's
// optional whitespace). bytes.Trim with a cutset builds the cutset's set
// on every call, and this runs for every field and list element.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
