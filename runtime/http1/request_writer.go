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
	if len(method) == 0 {
		return dst, false, errNoMethod
	}
	for _, c := range method {
		if !isTchar(c) {
			return dst, false, &HeadError{"invalid method"}
		}
	}
	target := path
	if string(method) == "CONNECT" && len(path) == 0 {
		target = authority
	}
	if len(target) == 0 {
		return dst, false, errNoPath
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return dst, false, &HeadError{"invalid request target"}
		}
	}
	if !validHost(authority) {
		return dst, false, &HeadError{"invalid authority"}
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
		if len(name) > 0 && name[0] == ':' {
			continue
		}
		switch string(name) {
		case "host", "content-length", "transfer-encoding", "keep-alive", "proxy-connection":
			continue
		case "trailer":
			if f.BodyLength >= 0 {
				continue
			}
		case "connection":
			forEachToken(value, func(tok []byte) {
				if asciiEqualFold(tok, "upgrade") {
					connUpgrade = true
				}
			})
			continue
		case "upgrade":
			upgradeField = true
		}
		if h.Checked(i) {
			dst = appendParsedField(dst, name, value)
		} else if dst, err = appendCheckedField(dst, name, value); err != nil {
			return dst, false, err
		}
	}
	upgrade = connUpgrade && upgradeField
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
	return append(dst, "\r\n"...), upgrade, nil
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
