package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// normalizeRequestPath normalizes r's path by pol before anything looks at
// it (filters see ":path" normalized, as on Envoy), and makes the
// normalized path the one forwarded: URL.RawPath is the escaped form sent
// upstream, URL.Path its decoding that routes and authorization match. The
// query is untouched. It returns the local reply for a path refused (400)
// or redirected (307), nil otherwise.
func normalizeRequestPath(r *http.Request, pol pathPolicy) *filter.LocalReply {
	if r.Method == http.MethodConnect || r.URL.Path == "*" || r.RequestURI == "*" {
		return nil
	}
	raw := r.RequestURI
	if raw == "" || raw[0] != '/' {
		// Absolute-form ("GET http://host/p") or a server that kept no
		// request-target: the URL's own escaped path.
		raw = r.URL.EscapedPath()
	} else if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	out, verdict := normalizePath(raw, pol)
	switch verdict {
	case pathReject:
		return &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("Bad Request\n"), Details: "path_normalization_failed"}
	case pathRedirect:
		loc := out
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		return &filter.LocalReply{
			Status: http.StatusTemporaryRedirect, Header: http.Header{"Location": {loc}},
			Details: "path_normalization_redirect", GRPCStatus: grpcInternal, // gRPC clients do not follow redirects
		}
	}
	if out == raw {
		return nil
	}
	p, err := url.PathUnescape(out)
	if err != nil {
		return &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("Bad Request\n"), Details: "path_normalization_failed"}
	}
	r.URL.Path, r.URL.RawPath = p, out
	return nil
}
