package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// validRequestTarget reports whether h has a :method and a :path that is
// a request-target: origin form or "*" (as url.ParseRequestURI takes
// them), or CONNECT's authority form. The common path, without escapes or
// control bytes, is checked without allocating.
func validRequestTarget(h *stream.HeaderMap) bool {
	method, _ := h.GetPseudo(stream.PseudoMethod)
	target, _ := h.GetPseudo(stream.PseudoPath)
	return validTarget(method, target)
}

// validTarget is validRequestTarget for the request's method and :path,
// for a caller that has them at hand.
func validTarget(method, target []byte) bool {
	if len(method) == 0 {
		return false
	}
	if string(method) == http.MethodConnect && (len(target) == 0 || target[0] != '/') {
		return true
	}
	if len(target) > 0 && target[0] == '/' {
		plain := true
		for _, c := range target {
			if c < 0x20 || c == 0x7f || c == '%' {
				plain = false
				break
			}
		}
		if plain {
			return true
		}
	}
	_, err := url.ParseRequestURI(string(target))
	return err == nil
}

// normalizeRequestPath normalizes the :path of h by pol before anything
// looks at it (filters see ":path" normalized, as on Envoy), and makes the
// normalized path the one forwarded; routes and authorization match its
// decoding. The query is untouched. It returns the local reply for a path
// refused (400) or redirected (307), nil otherwise. :path is in origin
// form here (codecs turn an absolute-form target into :authority and
// :path, as Envoy's do). method is the request's; target is :path as it
// leaves (normalized or not), for the checks that follow.
func normalizeRequestPath(h *stream.HeaderMap, method []byte, pol pathPolicy) (lrep *filter.LocalReply, target []byte) {
	target, _ = h.GetPseudo(stream.PseudoPath)
	if string(method) == http.MethodConnect || string(target) == "*" || len(target) == 0 || target[0] != '/' {
		return nil, target
	}
	if plainPath(target) {
		return nil, target
	}
	raw, query := string(target), ""
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw, query = raw[:i], raw[i:]
	}
	out, verdict := normalizePath(raw, pol)
	switch verdict {
	case pathReject:
		return &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("Bad Request\n"), Details: "path_normalization_failed"}, nil
	case pathRedirect:
		loc := out
		if len(query) > 1 {
			loc += query
		}
		var hdr stream.HeaderMap
		hdr.Add("location", loc)
		return &filter.LocalReply{
			Status: http.StatusTemporaryRedirect, Header: &hdr,
			Details: "path_normalization_redirect", GRPCStatus: grpcInternal, // gRPC clients do not follow redirects
		}, nil
	}
	if out == raw {
		return nil, target
	}
	if _, err := url.PathUnescape(out); err != nil {
		return &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("Bad Request\n"), Details: "path_normalization_failed"}, nil
	}
	h.Set(stream.Path, out+query)
	target, _ = h.GetPseudo(stream.PseudoPath)
	return nil, target
}

// plainPath reports a path that every policy leaves as it is: unreserved
// characters and single slashes, no dot segment, escape, parameter or
// control byte (the common request, checked without allocating). The
// query is not looked at.
func plainPath(target []byte) bool {
	prev := byte(0)
	segStart := 0
	for i, c := range target {
		switch {
		case c == '?':
			return !dotSegment(target[segStart:i])
		case c == '/':
			if prev == '/' || dotSegment(target[segStart:i]) {
				return false
			}
			segStart = i + 1
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
		default:
			return false
		}
		prev = c
	}
	return !dotSegment(target[segStart:])
}

func dotSegment(seg []byte) bool {
	return string(seg) == "." || string(seg) == ".."
}
