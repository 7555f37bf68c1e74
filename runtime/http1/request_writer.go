package http1

import (
	"strconv"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// RequestFraming is what the client side decides about a request's
// framing; the header map's own framing fields are not trusted (they came
// from another hop or a filter).
type RequestFraming struct {
	// BodyLength is the body's length: 0 for none, -1 when unknown (the
	// body goes out chunked, with trailers when there are any).
	BodyLength int64
	// Close asks the server to close the connection after its answer
	// (the last request a connection may carry).
	Close bool
}

// HeadError is a request head the codec refuses to write (a missing
// pseudo-header, or bytes that would change the message's meaning on the
// wire); nothing was sent.
type HeadError struct{ Reason string }

func (e *HeadError) Error() string { return "http1: " + e.Reason }

var (
	errNoMethod = &HeadError{"request without :method"}
	errNoPath   = &HeadError{"request without :path"}
)

// AppendRequestHead appends the request line and header section of h:
// the request line from :method and :path (:authority for CONNECT), Host
// from :authority, then the fields in order. The codec owns framing and
// connection management: Content-Length, Transfer-Encoding, Connection,
// Keep-Alive and Host fields of h are replaced by its own, Trailer is kept
// only on a chunked body, and Connection says "upgrade" when h asks for an
// upgrade (Connection naming upgrade and an Upgrade field), which upgrade
// reports. Names and values are checked: a filter may have set any bytes,
// and a CR or LF passed on would let it inject fields or requests.
func AppendRequestHead(dst []byte, h *stream.HeaderMap, f RequestFraming) (out []byte, upgrade bool, err error) {
	method, _ := h.GetPseudo(stream.PseudoMethod)
	path, _ := h.GetPseudo(stream.PseudoPath)
	authority, _ := h.GetPseudo(stream.PseudoAuthority)
	target := path
	if len(path) == 0 && string(method) == "CONNECT" {
		target = authority
	}
	if !validRequestLine(method, target, authority) {
		return dst, false, requestLineError(method, target, authority)
	}
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, authority...)
	dst = append(dst, "\r\n"...)

	connUpgrade, upgradeField := false, false
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if len(name) > 0 {
			if name[0] == ':' {
				continue
			}
			// The fields the codec owns or looks at, told apart from the
			// others by first byte and length before their names are
			// compared, out of line: the plain request has none of them
			// but Host, which the codec's own Host replaces.
			if len(name) < 32 && requestHeadNames[name[0]]>>len(name)&1 != 0 &&
				!keepRequestField(name, value, f, &connUpgrade, &upgradeField) {
				continue
			}
		}
		if h.Checked(i) {
			dst = appendParsedField(dst, name, value)
		} else if dst, err = appendCheckedField(dst, name, value); err != nil {
			return dst, false, err
		}
	}
	upgrade = connUpgrade && upgradeField
	if upgrade || f.Close || f.BodyLength != 0 || methodExpectsBody(method) {
		dst = appendRequestFraming(dst, upgrade, f, method)
	}
	return append(dst, "\r\n"...), upgrade, nil
}

// requestHeadNames has, for a field name's first byte, bit n set when a
// name of that byte and length n is one keepRequestField decides on
// (host, trailer, upgrade, transfer-encoding, keep-alive, connection,
// content-length, proxy-connection).
var requestHeadNames = func() (t [256]uint32) {
	for _, s := range []string{"host", "content-length", "transfer-encoding", "keep-alive", "proxy-connection", "trailer", "connection", "upgrade"} {
		t[s[0]] |= 1 << len(s)
	}
	return t
}()

// keepRequestField says whether AppendRequestHead writes a field of h
// whose name requestHeadNames marks (or another with the same first
// byte and length), and notes a Connection naming upgrade and an Upgrade
// field. Out of line: see AppendRequestHead.
//
//go:noinline
func keepRequestField(name, value []byte, f RequestFraming, connUpgrade, upgradeField *bool) bool {
	switch string(name) {
	case "host", "content-length", "transfer-encoding", "keep-alive", "proxy-connection":
		return false
	case "trailer":
		return f.BodyLength < 0
	case "connection":
		forEachToken(value, func(tok []byte) {
			if asciiEqualFold(tok, "upgrade") {
				*connUpgrade = true
			}
		})
		return false
	case "upgrade":
		*upgradeField = true
	}
	return true
}

// validRequestLine says whether the request line's parts can be written:
// a method of token characters, a target without spaces or controls, an
// authority of host characters (requestLineError tells which is not).
// Not inlined: AppendRequestHead holds too many values for its loops to
// keep theirs in registers (a spill and two reloads a byte).
//
//go:noinline
func validRequestLine(method, target, authority []byte) bool {
	if len(method) == 0 || len(target) == 0 {
		return false
	}
	for _, c := range method {
		if !isTchar(c) {
			return false
		}
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return validHost(authority)
}

// requestLineError is the error for a request line validRequestLine
// refused, in the order the checks were made. Out of line: a proxied
// request's line is nearly always valid.
//
//go:noinline
func requestLineError(method, target, authority []byte) error {
	if len(method) == 0 {
		return errNoMethod
	}
	for _, c := range method {
		if !isTchar(c) {
			return &HeadError{"invalid method"}
		}
	}
	if len(target) == 0 {
		return errNoPath
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return &HeadError{"invalid request target"}
		}
	}
	return &HeadError{"invalid authority"}
}

// appendRequestFraming appends the Connection and framing fields of a
// request head: out of line, since a plain GET has none.
//
//go:noinline
func appendRequestFraming(dst []byte, upgrade bool, f RequestFraming, method []byte) []byte {
	switch {
	case upgrade:
		dst = append(dst, "Connection: upgrade\r\n"...)
	case f.Close:
		dst = append(dst, "Connection: close\r\n"...)
	}
	switch {
	case f.BodyLength > 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, f.BodyLength, 10)
		dst = append(dst, "\r\n"...)
	case f.BodyLength < 0:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case methodExpectsBody(method):
		// RFC 9112 section 6.3: without it a server may wait for a body.
		dst = append(dst, "Content-Length: 0\r\n"...)
	}
	return dst
}

// AppendTrailers appends the end of a chunked body: the last chunk, the
// trailer fields of t (nil for none) and the final CRLF. Fields that a
// trailer may not carry (framing, routing) are dropped, as when reading.
func AppendTrailers(dst []byte, t *stream.HeaderMap) ([]byte, error) {
	dst = append(dst, "0\r\n"...)
	if t != nil {
		for i := 0; i < t.Len(); i++ {
			name, value := t.At(i)
			if len(name) > 0 && name[0] == ':' || framingField(name) {
				continue
			}
			var err error
			if dst, err = appendCheckedField(dst, name, value); err != nil {
				return dst, err
			}
		}
	}
	return append(dst, "\r\n"...), nil
}

// appendCheckedField appends "name: value\r\n" after checking both (RFC
// 9110 section 5: a token, and a value without CTLs other than HTAB).
func appendCheckedField(dst, name, value []byte) ([]byte, error) {
	if len(name) == 0 {
		return dst, &HeadError{"empty field name"}
	}
	if !validToken(name) {
		return dst, &HeadError{"invalid field name " + strconv.Quote(string(name))}
	}
	if stream.HasCTL(value) {
		return dst, &HeadError{"invalid value for field " + string(name)}
	}
	return appendParsedField(dst, name, value), nil
}

// appendParsedField appends "name: value\r\n" as it is: for a field our
// parser checked on the way in (stream.HeaderMap.Checked), the check a
// writer makes (a token name, a value without CTLs) done once, not per
// hop. A field a filter, the config or the proxy set is not marked and
// is checked when written.
func appendParsedField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

func methodExpectsBody(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}
