package route

import (
	"bytes"
	"net/url"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// request is what a route reads of a request: the header map as the
// codec (and the filters) left it, with :path cut into its decoded path
// and raw query. Parsing it allocates nothing unless the path has escapes.
type request struct {
	h      *stream.HeaderMap
	method []byte
	// path is :path's path, percent-decoded (so a kept "/a%2Fb" is seen as
	// "/a/b"); empty for CONNECT's authority form.
	path  []byte
	query []byte
}

func newRequest(h *stream.HeaderMap) request {
	r := request{h: h}
	r.method, _ = h.GetPseudo(stream.PseudoMethod)
	target, _ := h.GetPseudo(stream.PseudoPath)
	if len(target) == 0 || target[0] != '/' && !(len(target) == 1 && target[0] == '*') {
		// CONNECT's authority form has no path.
		return r
	}
	path, query, _ := bytes.Cut(target, []byte{'?'})
	r.query = query
	if bytes.IndexByte(path, '%') >= 0 {
		if p, err := url.PathUnescape(string(path)); err == nil {
			path = []byte(p)
		}
	}
	r.path = path
	return r
}

// authority is the request's host: :authority, else the Host field, else
// CONNECT's authority-form target.
func (r *request) authority() []byte {
	if a, ok := r.h.GetPseudo(stream.PseudoAuthority); ok && len(a) > 0 {
		return a
	}
	if a, ok := r.h.Get("host"); ok && len(a) > 0 {
		return a
	}
	if t, _ := r.h.GetPseudo(stream.PseudoPath); len(t) > 0 && t[0] != '/' && t[0] != '*' {
		return t
	}
	return nil
}

// hasPrefix is bytes.HasPrefix for a string prefix, without converting it.
func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}
