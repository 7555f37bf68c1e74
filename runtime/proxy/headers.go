package proxy

import (
	"net"
	"net/http"
	"strings"
)

// hopHeaders are the connection-specific headers of RFC 9110 section 7.6.1
// that a proxy must not forward.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopHeaders strips hop-by-hop headers, including those named in
// Connection. "TE: trailers" is kept: gRPC needs it end to end over HTTP/2.
// An Upgrade that is being proxied (WebSocket) keeps Connection and Upgrade.
func removeHopHeaders(h http.Header, keepUpgrade bool) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" || keepUpgrade && strings.EqualFold(name, "upgrade") {
				continue
			}
			h.Del(name)
		}
	}
	teTrailers := false
	for _, v := range h["Te"] {
		if strings.Contains(strings.ToLower(v), "trailers") {
			teTrailers = true
		}
	}
	for _, k := range hopHeaders {
		if keepUpgrade && (k == "Connection" || k == "Upgrade") {
			continue
		}
		delete(h, k)
	}
	if teTrailers {
		h["Te"] = []string{"trailers"}
	}
}

// upgradeType returns the protocol a request asks to upgrade to ("websocket").
func upgradeType(h http.Header) string {
	if !headerHasToken(h, "Connection", "upgrade") {
		return ""
	}
	return strings.ToLower(h.Get("Upgrade"))
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h[key] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// setForwarded sets X-Forwarded-For/-Proto/-Host as Envoy does at the edge:
// the client's address appended, the scheme and host as the client sent them.
func setForwarded(h http.Header, remoteAddr, scheme, host string) {
	if ip, _, err := net.SplitHostPort(remoteAddr); err == nil {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
		} else {
			h["X-Forwarded-For"] = []string{ip}
		}
	}
	h["X-Forwarded-Proto"] = []string{scheme}
	if _, ok := h["X-Forwarded-Host"]; !ok && host != "" {
		h["X-Forwarded-Host"] = []string{host}
	}
}
