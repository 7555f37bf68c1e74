package http1

import (
	"net/http"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Response is a parsed response head. Its header slices point into the
// connection's read buffer and are valid until the next response is read
// on the connection.
type Response struct {
	// Header holds :status, then every field as received except
	// Transfer-Encoding (framing is the codec's); Content-Length is kept
	// when it frames the body, or on a HEAD or 304 response, where it
	// describes the body the request would otherwise have had.
	Header stream.HeaderMap
	Status int
	Minor  int // 0 for HTTP/1.0, 1 for HTTP/1.1

	// ContentLength is the body's length: -1 when unknown (chunked, or
	// read until the server closes), 0 when there is none.
	ContentLength int64
	Chunked       bool
	// KeepAlive says the connection may carry another request once this
	// response is read to its end: no "close", HTTP/1.1 or keep-alive,
	// and nothing doubtful about the framing.
	KeepAlive bool

	// What the head said, before the framing decision.
	hasCL, hasTE, closeTok, keepAliveTok bool
	cl                                   int64
}

// reset clears the response for the next head, keeping Header's
// storage. Field by field, as Request.reset (TestResponseReset).
func (r *Response) reset() {
	r.Header.Reset()
	r.Status, r.Minor, r.ContentLength = 0, 0, 0
	r.Chunked, r.KeepAlive = false, false
	r.hasCL, r.hasTE, r.closeTok, r.keepAliveTok, r.cl = false, false, false, false, 0
}

// parseResponse parses one response head from buf and returns its length.
// Framing fields are checked strictly (RFC 9112 section 6.3: a proxy must
// not forward a response whose length it cannot trust): Content-Length
// must be digits only and agree when repeated; Transfer-Encoding must be
// exactly one "chunked". With no complete head it returns errNeedMore.
func parseResponse(buf []byte, resp *Response, lim Limits) (int, error) {
	// The common head here: every line complete and of the common form
	// (scanField), one Content-Length, no Transfer-Encoding. Any other
	// head, and any error, the long way from its start
	// (parseResponseSlow, out of line with the cases the plain response
	// never takes), which gives this one the same answer.
	resp.reset()
	max := lim.headerBytes()
	line, i, err := nextLine(buf, 0, 0, max)
	if err != nil {
		return parseResponseSlow(buf, resp, lim)
	}
	code, err := parseStatusLine(line, resp)
	if err != nil {
		return parseResponseSlow(buf, resp, lim)
	}
	resp.Header.AddPseudo(stream.PseudoStatus, code)
	fields, maxFields := 0, lim.headers()
	for {
		name, value, next, ok := scanField(buf, i, 0, max)
		if !ok {
			return parseResponseSlow(buf, resp, lim)
		}
		i = next
		if name == nil {
			return i, nil
		}
		if fields++; fields > maxFields {
			return parseResponseSlow(buf, resp, lim)
		}
		if len(name) < 32 && responseFramingNames[name[0]]>>len(name)&1 != 0 {
			switch string(name) {
			case "content-length":
				n, ok := parseDigits(value)
				if !ok || resp.hasCL {
					return parseResponseSlow(buf, resp, lim)
				}
				resp.hasCL, resp.cl = true, n
			case "transfer-encoding":
				return parseResponseSlow(buf, resp, lim)
			case "connection":
				resp.closeTok, resp.keepAliveTok, _ = connectionTokens(value, resp.closeTok, resp.keepAliveTok, false)
			}
		}
		resp.Header.AddParsed(name, value) // scanField checked it
	}
}

// responseFramingNames has, for a field name's first byte, bit n set when
// a name of that byte and length n is one parseResponse looks at
// (content-length, transfer-encoding, connection).
var responseFramingNames = func() (t [256]uint32) {
	for _, s := range []string{"content-length", "transfer-encoding", "connection"} {
		t[s[0]] |= 1 << len(s)
	}
	return t
}()

// parseResponseSlow is parseResponse for any head.
//
//go:noinline
func parseResponseSlow(buf []byte, resp *Response, lim Limits) (int, error) {
	resp.reset()
	max := lim.headerBytes()
	line, i, err := nextLine(buf, 0, 0, max)
	if err != nil {
		return 0, err
	}
	code, err := parseStatusLine(line, resp)
	if err != nil {
		return 0, err
	}
	resp.Header.AddPseudo(stream.PseudoStatus, code)
	fields := 0
	for {
		// As ParseRequest's loop: the common line in one pass.
		name, value, next, ok := scanField(buf, i, 0, max)
		var line []byte
		if !ok {
			var err error
			if line, next, err = nextLine(buf, i, 0, max); err != nil {
				return 0, err
			}
		}
		i = next
		if ok && name == nil || !ok && len(line) == 0 {
			break
		}
		fields++
		if fields > lim.headers() {
			return 0, refuse(http.StatusBadGateway, "too many response header fields")
		}
		if !ok {
			var err error
			if name, value, err = parseField(line); err != nil {
				return 0, err
			}
		}
		switch string(name) {
		case "content-length":
			n, ok := parseDigits(value)
			if !ok {
				return 0, refuse(http.StatusBadGateway, "invalid Content-Length in response")
			}
			if resp.hasCL && n != resp.cl {
				return 0, refuse(http.StatusBadGateway, "differing Content-Length values in response")
			}
			if resp.hasCL {
				continue // one field is enough downstream
			}
			resp.hasCL, resp.cl = true, n
		case "transfer-encoding":
			// Exactly "chunked": another coding would also lose what the
			// client needs to decode the body (Go's Transport refuses
			// them too); a second field would apply chunked twice.
			if resp.hasTE || !asciiEqualFold(value, "chunked") {
				return 0, refuse(http.StatusBadGateway, "unsupported Transfer-Encoding in response")
			}
			resp.hasTE = true
			continue
		case "connection":
			resp.closeTok, resp.keepAliveTok, _ = connectionTokens(value, resp.closeTok, resp.keepAliveTok, false)
		}
		resp.Header.AddParsed(name, value) // parseField checked it
	}
	return i, nil
}

// parseStatusLine reads HTTP/1.x SP 3DIGIT [SP reason-phrase] and returns
// the code's bytes.
func parseStatusLine(line []byte, resp *Response) ([]byte, error) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || !isDigit(line[7]) || line[8] != ' ' {
		return nil, refuse(http.StatusBadGateway, "malformed response status line")
	}
	resp.Minor = 1
	if line[7] == '0' {
		resp.Minor = 0
	}
	code := line[9:12]
	if !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) || code[0] == '0' || len(line) > 12 && line[12] != ' ' {
		return nil, refuse(http.StatusBadGateway, "malformed response status code")
	}
	resp.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	return code, nil
}

// parseDigits takes 1*DIGIT, at most 18 (no overflow); no sign, no list.
func parseDigits(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// frame decides how the body of a final response ends (RFC 9112 section
// 6.3), given whether it answers a HEAD request. Readable but doubtful
// framing clears KeepAlive: the body is read and the connection closed.
func (r *Response) frame(head bool) {
	r.KeepAlive = !r.closeTok && (r.Minor >= 1 || r.keepAliveTok)
	switch {
	case r.Status == http.StatusSwitchingProtocols:
		r.KeepAlive = false
	case head || r.Status == http.StatusNoContent || r.Status == http.StatusNotModified:
		// No body follows whatever the head says. A 204 must not declare
		// one (RFC 9110 section 15.3.5): one that does may send it.
		if r.Status == http.StatusNoContent && (r.hasTE || r.hasCL && r.cl != 0) {
			r.KeepAlive = false
		}
	case r.hasTE:
		r.Chunked, r.ContentLength = true, -1
		if r.hasCL || r.Minor == 0 {
			// Both framings (a smuggling attempt or a broken server), or
			// chunked in HTTP/1.0: chunked wins and the connection is
			// not reused (RFC 9112 section 6.3).
			r.Header.Del("content-length")
			r.KeepAlive = false
		}
	case r.hasCL:
		r.ContentLength = r.cl
	default:
		// Neither: the body ends when the server closes.
		r.ContentLength = -1
		r.KeepAlive = false
	}
}
