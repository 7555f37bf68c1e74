package proxy

import (
	"math/bits"
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

// requestFields are the fields sanitizeRequestHeaders notes in its walk,
// for the lookups that come after it (setRequestID, effectiveTimeout).
type requestFields uint8

const (
	seenRequestID requestFields = 1 << iota
	seenGRPCTimeout
	// seenTrailer: a Trailer field (declaresTrailers looks at it).
	seenTrailer
)

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
//
// seen says which of the fields the connection manager looks up next the
// request had (requestFields): a field it does not mark is absent from
// the map sanitizeRequestHeaders leaves, and its lookup can be skipped.
// mask is requestMask's bits for the fields the request had: exact for
// X-Forwarded-* (a request whose Connection nominates one is refused),
// and for the hop-by-hop fields a superset of what the map it leaves has
// (a nominated one is removed after the walk), which is all forward
// needs of them (a bit for an absent field only has it look for or
// remove a field that is not there). Nothing before forward adds such a
// field but a filter: on a route without filters forward takes mask for
// its own walk.
//
// Not inlined (the profile-guided build inlined it into serve): its
// ~540-byte frame then stays below serve's, where serve's frame is on
// the stack for the whole request, under the chain that waits for the
// upstream, and every line of it a cold miss on each request.
//
//go:noinline
func sanitizeRequestHeaders(h *stream.HeaderMap) (ok bool, seen requestFields, mask uint16) {
	// One walk finds the client's copies of internal headers and says
	// whether there is a Connection to look at (names in the map are
	// lower-case): most requests have neither, and a Has and an
	// upgradeOf before it were two more walks. It notes X-Request-Id and
	// grpc-timeout too, which most requests lack: a Get for each after it
	// walked the map again (some 150 instructions a request), and Trailer,
	// whose walk in declaresTrailers was some 120.
	var internal []string
	conn := false
	for name := range h.All() {
		if len(name) >= len(internalHeaderPrefix) && string(name[:len(internalHeaderPrefix)]) == internalHeaderPrefix {
			internal = append(internal, string(name))
			continue
		}
		// requestMask's bits, and the three fields seen notes.
		switch string(name) {
		case "x-request-id":
			seen |= seenRequestID
		case "grpc-timeout":
			seen |= seenGRPCTimeout
		default:
			bit := requestFieldBit(name)
			mask |= bit
			switch bit {
			case hopConnection:
				conn = true
			case hopTrailer:
				seen |= seenTrailer
			}
		}
	}
	for _, name := range internal {
		h.Del(name)
	}
	if conn && !sanitizeConnection(h) {
		return false, seen, mask
	}
	return true, seen, mask
}

// sanitizeConnection removes the fields the request's Connection
// nominates and leaves Connection with what nominates nothing; false
// refuses the request (too many tokens, or one naming a pseudo-header or
// an X-Forwarded-* field). Kept out of line: most requests have no
// Connection field, and its locals (the values' store, the token walks)
// would make sanitizeRequestHeaders' frame, on every request's stack,
// that much larger.
//
//go:noinline
func sanitizeConnection(h *stream.HeaderMap) bool {
	upgrade := upgradeOf(h) != ""
	// Without allocating: a client's "Connection: keep-alive" is
	// common, and a garbage collection every few seconds under load
	// is a latency tail.
	var store [4][]byte
	values := connectionValues(store[:0], h)
	tokens := 0
	for _, v := range values {
		for range stream.Tokens(v) {
			tokens++
		}
	}
	if tokens >= maxConnectionTokens {
		return false
	}
	kept := 0
	for _, v := range values {
		for t := range stream.Tokens(v) {
			switch {
			case t[0] == ':', stream.EqualFold(t, "x-forwarded-for"), stream.EqualFold(t, "x-forwarded-host"), stream.EqualFold(t, "x-forwarded-proto"):
				return false
			case keptToken(t):
				// Not a nomination (or, for TE, left to the hop-by-hop
				// pass that keeps "trailers").
				kept++
			default:
				h.DelBytes(t)
			}
		}
	}
	// Filters see Connection without the names it nominated, as
	// Envoy leaves it; an upgrade goes on with only its own token.
	switch {
	case upgrade:
		h.Set("connection", "Upgrade")
	case kept == 0:
		h.Del("connection")
	case kept < tokens:
		// The values are slices of buffers Set does not write over.
		var b []byte
		for _, v := range values {
			for t := range stream.Tokens(v) {
				if keptToken(t) {
					if len(b) > 0 {
						b = append(b, ", "...)
					}
					b = append(b, t...)
				}
			}
		}
		h.Set("connection", string(b))
	}
	return true
}

// keptToken is a Connection option that nominates no field to remove.
func keptToken(t []byte) bool {
	return stream.EqualFold(t, "connection") || stream.EqualFold(t, "te") || stream.EqualFold(t, "close") || stream.EqualFold(t, "keep-alive") ||
		stream.EqualFold(t, "upgrade") || stream.EqualFold(t, "http2-settings")
}

// connectionValues appends the values of h's Connection fields to dst.
// They stay valid while fields are removed: removal does not write over
// the bytes a field's value is a slice of.
func connectionValues(dst [][]byte, h *stream.HeaderMap) [][]byte {
	for i := range h.Len() {
		if name, v := h.At(i); string(name) == "connection" {
			dst = append(dst, v)
		}
	}
	return dst
}

// upgradeOf returns the protocol a request's map asks to upgrade to
// ("websocket").
func upgradeOf(h *stream.HeaderMap) string {
	for i := range h.Len() {
		name, v := h.At(i)
		if string(name) != "connection" {
			continue
		}
		for t := range stream.Tokens(v) {
			if stream.EqualFold(t, "upgrade") {
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

// The bits requestMask sets besides hopMask's: the X-Forwarded-* fields
// setForwardedFields rewrites.
const (
	hopBits         = 1<<9 - 1
	fwdFor   uint16 = 1 << 9
	fwdProto uint16 = 1 << 10
	fwdHost  uint16 = 1 << 11
)

// requestFieldBit is a field name's bit in requestMask: hopIndex's for a
// hop-by-hop field, fwdFor, fwdProto or fwdHost for an X-Forwarded-*
// one, 0 for any other.
func requestFieldBit(name []byte) uint16 {
	if k := hopIndex(name); k >= 0 {
		return 1 << k
	}
	switch string(name) {
	case "x-forwarded-for":
		return fwdFor
	case "x-forwarded-proto":
		return fwdProto
	case "x-forwarded-host":
		return fwdHost
	}
	return 0
}

// requestMask is hopMask with fwdFor, fwdProto and fwdHost set for the
// X-Forwarded-* fields the request has: forward's one walk for both (the
// fields removeFixedHopHeaders removes are none of these), where
// setForwarded walked the fields again.
func requestMask(h *stream.HeaderMap) (m uint16) {
	for i := range h.Len() {
		name, _ := h.At(i)
		m |= requestFieldBit(name)
	}
	return m
}

// removeFixedHopHeaders strips the hop-by-hop headers of RFC 9110 from a
// request by name (those its Connection nominated went at entry, in
// sanitizeRequestHeaders); m is hopMask(h), which the caller has taken
// to see whether there is a Connection to look for an upgrade in.
// "TE: trailers" is kept: gRPC needs it end to end over HTTP/2. An
// upgrade being proxied (WebSocket) keeps Connection and Upgrade.
func removeFixedHopHeaders(h *stream.HeaderMap, m uint16, keepUpgrade bool) {
	m &= hopBits // requestMask's other bits
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
	delHopHeaders(h, m)
	if teTrailers {
		h.Add("te", "trailers")
	}
}

// removeHopHeaders strips a response's hop-by-hop headers, those its
// Connection nominates included. Its trailer field stays: it declares the
// trailers that follow (HTTP/1.1 then sends the body chunked), and
// trailer says whether there is one (the walk that found the others
// found it; a Has after it was one more).
func removeHopHeaders(h *stream.HeaderMap, keepUpgrade bool) (trailer bool) {
	trailer, _ = removeResponseHops(h, keepUpgrade)
	return trailer
}

// removeResponseHops is removeHopHeaders that also says whether the
// response's type is one to flush piece by piece (isStreamingType): its
// walk finds the Content-Type too, where isStreamingType's Get walked
// the fields again.
func removeResponseHops(h *stream.HeaderMap, keepUpgrade bool) (trailer, streaming bool) {
	// One walk finds the hop-by-hop fields and whether a Connection
	// nominates anything but keep-alive (nginx's value on every response:
	// its one nomination is a hop-by-hop name, which m removes if
	// present); connectionValues walked the fields again.
	var m uint16
	nominates, typed := false, false
	for i := range h.Len() {
		name, v := h.At(i)
		if k := hopIndex(name); k >= 0 {
			m |= 1 << k
			if k == 0 && string(v) != "keep-alive" && !stream.EqualFold(v, "keep-alive") {
				nominates = true
			}
		} else if !typed && string(name) == "content-type" {
			// The first, as Get finds it.
			typed, streaming = true, streamingType(v)
		}
	}
	trailer = m&hopTrailer != 0
	m &^= hopTrailer
	if nominates {
		delNominated(h, m, keepUpgrade)
	}
	if keepUpgrade {
		m &^= hopConnection | hopUpgrade
	}
	delHopHeaders(h, m)
	return trailer, streaming
}

// delNominated removes the fields a response's Connection fields
// nominate; m is its hopMask. Kept out of line: the plain response's
// Connection is nginx's "keep-alive", and the hot path stays in fewer
// cache lines.
//
//go:noinline
func delNominated(h *stream.HeaderMap, m uint16, keepUpgrade bool) {
	// Without allocating.
	var store [4][]byte
	for _, v := range connectionValues(store[:0], h) {
		if stream.EqualFold(v, "keep-alive") {
			continue
		}
		delNominatedIn(h, v, m, keepUpgrade)
	}
}

// delNominatedIn removes the fields one Connection value v nominates.
func delNominatedIn(h *stream.HeaderMap, v []byte, m uint16, keepUpgrade bool) {
	for t := range stream.Tokens(v) {
		if keepUpgrade && stream.EqualFold(t, "upgrade") || stream.EqualFold(t, "trailer") {
			continue
		}
		if k := hopIndex(t); k >= 0 && m&(1<<k) == 0 {
			// A hop-by-hop name the response does not have (nginx's
			// "Connection: keep-alive"): nothing to search for.
			continue
		}
		h.DelBytes(t)
	}
}

var schemeHTTP, schemeHTTPS = []byte("http"), []byte("https")

// The names of the fields the proxy adds with AddChecked and AddClean,
// which keep the name they are given (never written to).
var (
	xForwardedForName   = []byte("x-forwarded-for")
	xForwardedProtoName = []byte("x-forwarded-proto")
	xForwardedHostName  = []byte("x-forwarded-host")
	schemeName          = []byte(stream.Scheme)
)

// delHopHeaders removes the fields named hopHeaders[k] for each bit k of
// m, visiting the set bits only (a response has one or two).
func delHopHeaders(h *stream.HeaderMap, m uint16) {
	for ; m != 0; m &= m - 1 {
		h.Del(hopHeaders[bits.TrailingZeros16(m)])
	}
}

// setForwarded sets X-Forwarded-For/-Proto/-Host as Envoy does at the edge:
// the client's address (clientIP; none when empty) appended, the scheme
// and host as the client sent them.
func setForwarded(h *stream.HeaderMap, clientIP, scheme string, host []byte) {
	setForwardedFields(h, requestMask(h), clientIP, []byte(scheme), host)
}

// setForwardedFields is setForwarded with m, the request's requestMask:
// the walk over the fields that says which of the three the request has
// (names in the map are lower-case) is the one that found its hop-by-hop
// fields. A Set and a Has searched the map again each, though the
// request has none of them, mostly. scheme is :scheme's bytes: a string
// of them was a runtime call on every request, for comparisons.
func setForwardedFields(h *stream.HeaderMap, m uint16, clientIP string, scheme, host []byte) {
	if clientIP != "" {
		if m&fwdFor != 0 {
			appendForwardedFor(h, clientIP)
		} else {
			// Our constant name, and the address's bytes on the stack
			// (the map copies them), checked once here (AddClean) and not
			// again by the writer.
			var buf [64]byte
			h.AddClean(xForwardedForName, append(buf[:0], clientIP...))
		}
	}
	switch {
	case m&fwdProto != 0:
		h.Set("x-forwarded-proto", string(scheme))
	case string(scheme) == "http":
		// Absent: no Set's search. A scheme of ours is a value the
		// writer need not check (AddChecked); any other is checked.
		h.AddChecked(xForwardedProtoName, schemeHTTP)
	case string(scheme) == "https":
		h.AddChecked(xForwardedProtoName, schemeHTTPS)
	default:
		h.Add("x-forwarded-proto", string(scheme))
	}
	if m&fwdHost == 0 && len(host) > 0 {
		h.AddClean(xForwardedHostName, host)
	}
}

// appendForwardedFor appends clientIP to the request's X-Forwarded-For.
// Its values are joined in a buffer on the stack (the map copies it): a
// request from behind a load balancer has the field, and slices and a
// joined string were allocations on every one of them. Kept out of line:
// the plain request has no X-Forwarded-For.
//
//go:noinline
func appendForwardedFor(h *stream.HeaderMap, clientIP string) {
	var buf [256]byte
	joined := buf[:0]
	for i := range h.Len() {
		if name, v := h.At(i); string(name) == "x-forwarded-for" {
			joined = append(append(joined, v...), ", "...)
		}
	}
	h.SetBytes(xForwardedForName, append(joined, clientIP...))
}
