package proxy

import (
	"strings"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// maxConnectionTokens is Envoy's bound on the options of a request's
// Connection header: ten or more and the request is refused.
const maxConnectionTokens = 10

// internalHeaderPrefix marks sluice's own control headers. A client's
// copies are removed at entry: only a filter on this stream may steer
// sluice, never the client.
const internalHeaderPrefix = "x-sluice-"

// sanitizeRequestHeaders runs when a request arrives, before sluice adds
// x-request-id and X-Forwarded-*, and before any filter: it removes the
// headers the client's Connection header nominates, and the client's
// copies of sluice's internal headers. Done later, a nomination such as
// "Connection: x-request-id" would delete what sluice or a filter set
// (x-request-id, the sidecar's x-forwarded-client-cert, a Wasm-added
// header). It reports false, as Envoy does, when Connection nominates a
// pseudo-header or X-Forwarded-For/-Host/-Proto (removing them would hide
// where the request came from) or holds ten or more options; the request
// is then answered 400. Connection and Upgrade themselves stay for an
// upgrade (WebSocket); the rest of the hop-by-hop set goes when the
// request is forwarded.
func sanitizeRequestHeaders(h *stream.HeaderMap, upgrade bool) bool {
	if h.Has("connection") {
		var tokens []string
		for v := range h.Values("connection") {
			for _, t := range strings.Split(string(v), ",") {
				if t = strings.TrimSpace(t); t != "" {
					tokens = append(tokens, t)
				}
			}
		}
		if len(tokens) >= maxConnectionTokens {
			return false
		}
		kept := tokens[:0:0]
		for _, t := range tokens {
			switch name := strings.ToLower(t); {
			case strings.HasPrefix(t, ":"), name == "x-forwarded-for", name == "x-forwarded-host", name == "x-forwarded-proto":
				return false
			case name == "connection", name == "te", name == "close", name == "keep-alive", name == "upgrade", name == "http2-settings":
				// Not a nomination (or, for TE, left to the hop-by-hop
				// pass that keeps "trailers").
				kept = append(kept, t)
			default:
				h.Del(name)
			}
		}
		// Filters see Connection without the names it nominated, as
		// Envoy leaves it; an upgrade goes on with only its own token.
		switch {
		case upgrade:
			h.Set("connection", "Upgrade")
		case len(kept) == 0:
			h.Del("connection")
		case len(kept) < len(tokens):
			h.Set("connection", strings.Join(kept, ", "))
		}
	}
	var internal []string
	for name := range h.All() {
		if len(name) >= len(internalHeaderPrefix) && string(name[:len(internalHeaderPrefix)]) == internalHeaderPrefix {
			internal = append(internal, string(name))
		}
	}
	for _, name := range internal {
		h.Del(name)
	}
	return true
}

// upgradeOf returns the protocol a request's map asks to upgrade to
// ("websocket").
func upgradeOf(h *stream.HeaderMap) string {
	for v := range h.Values("connection") {
		for _, t := range strings.Split(string(v), ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				u, _ := h.Get("upgrade")
				return strings.ToLower(string(u))
			}
		}
	}
	return ""
}

// hopHeaders are the connection-specific headers of RFC 9110 section 7.6.1
// that a proxy must not forward. hopIndex gives a name's place in it.
var hopHeaders = []string{"connection", "proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}

const (
	hopConnection = 1 << 0
	hopTE         = 1 << 5
	hopTrailer    = 1 << 6
	hopUpgrade    = 1 << 8
)

// hopIndex is name's index in hopHeaders, or -1.
func hopIndex(name []byte) int {
	switch string(name) {
	case "connection":
		return 0
	case "proxy-connection":
		return 1
	case "keep-alive":
		return 2
	case "proxy-authenticate":
		return 3
	case "proxy-authorization":
		return 4
	case "te":
		return 5
	case "trailer":
		return 6
	case "transfer-encoding":
		return 7
	case "upgrade":
		return 8
	}
	return -1
}

// hopMask has bit i set when h has a field named hopHeaders[i]: one pass
// over the fields instead of a lookup per hop-by-hop name, so a request
// or response that has none (or only Connection) costs one walk.
func hopMask(h *stream.HeaderMap) (m uint16) {
	for i := range h.Len() {
		name, _ := h.At(i)
		if k := hopIndex(name); k >= 0 {
			m |= 1 << k
		}
	}
	return m
}

// removeFixedHopHeaders strips the hop-by-hop headers of RFC 9110 from a
// request by name (those its Connection nominated went at entry, in
// sanitizeRequestHeaders). "TE: trailers" is kept: gRPC needs it end to
// end over HTTP/2. An upgrade being proxied (WebSocket) keeps Connection
// and Upgrade.
func removeFixedHopHeaders(h *stream.HeaderMap, keepUpgrade bool) {
	m := hopMask(h)
	if keepUpgrade {
		m &^= hopConnection | hopUpgrade
	}
	if m == 0 {
		return
	}
	teTrailers := false
	if m&hopTE != 0 {
		for v := range h.Values("te") {
			if strings.Contains(strings.ToLower(string(v)), "trailers") {
				teTrailers = true
			}
		}
	}
	for k, name := range hopHeaders {
		if m&(1<<k) != 0 {
			h.Del(name)
		}
	}
	if teTrailers {
		h.Add("te", "trailers")
	}
}

// removeHopHeaders strips a response's hop-by-hop headers, those its
// Connection nominates included. Its trailer field stays: it declares the
// trailers that follow (HTTP/1.1 then sends the body chunked).
func removeHopHeaders(h *stream.HeaderMap, keepUpgrade bool) {
	m := hopMask(h) &^ hopTrailer
	if m&hopConnection != 0 {
		var nominated []string
		for v := range h.Values("connection") {
			for _, name := range strings.Split(string(v), ",") {
				name = strings.TrimSpace(name)
				if name == "" || keepUpgrade && strings.EqualFold(name, "upgrade") || strings.EqualFold(name, "trailer") {
					continue
				}
				nominated = append(nominated, name)
			}
		}
		for _, name := range nominated {
			h.Del(name)
		}
	}
	if keepUpgrade {
		m &^= hopConnection | hopUpgrade
	}
	for k, name := range hopHeaders {
		if m&(1<<k) != 0 {
			h.Del(name)
		}
	}
}

// setForwarded sets X-Forwarded-For/-Proto/-Host as Envoy does at the edge:
// the client's address (clientIP; none when empty) appended, the scheme
// and host as the client sent them.
func setForwarded(h *stream.HeaderMap, clientIP, scheme, host string) {
	if clientIP != "" {
		var prior []string
		for v := range h.Values("x-forwarded-for") {
			prior = append(prior, string(v))
		}
		if len(prior) > 0 {
			h.Set("x-forwarded-for", strings.Join(prior, ", ")+", "+clientIP)
		} else {
			h.Add("x-forwarded-for", clientIP)
		}
	}
	h.Set("x-forwarded-proto", scheme)
	if !h.Has("x-forwarded-host") && host != "" {
		h.Add("x-forwarded-host", host)
	}
}
