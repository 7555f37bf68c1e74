// Package http1 is sluice's HTTP/1.1 codec (RFC 9112) and its server
// connection loop: requests are parsed without copying into a
// stream.HeaderMap over a pooled read buffer, framing is strict (the
// request-smuggling rules of RFC 9112 section 6), and responses go out with
// one write of head and body where possible.
package http1

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"net/http"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Limits bound what one request head may hold.
type Limits struct {
	// MaxHeaderBytes caps the request line and header section together
	// (and a chunked body's trailer section); past it the answer is 431.
	MaxHeaderBytes int
	// MaxHeaders caps the number of header fields (431 past it).
	MaxHeaders int
}

// Defaults when a Limits field is zero: sluice's header size, and a field
// count above Envoy's 100 (sluice took 200 and more before it counted; the
// byte limit stays the main bound, the count keeps a head of tiny fields
// from costing a long list).
const (
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxHeaders     = 500
)

func (l Limits) headerBytes() int {
	if l.MaxHeaderBytes > 0 {
		return l.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (l Limits) headers() int {
	if l.MaxHeaders > 0 {
		return l.MaxHeaders
	}
	return DefaultMaxHeaders
}

// Error is a request the codec refuses. Status is the response to send;
// the connection is closed after it, since after a framing error nothing
// later on the connection can be trusted.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return "http1: " + e.Reason }

func refuse(status int, reason string) *Error { return &Error{Status: status, Reason: reason} }

// errNotHTTP refuses a request line whose version is not HTTP at all. On a
// port that also speaks h2c it is an invalid HTTP/2 connection preface as
// much as a bad HTTP/1.1 request, and the server closes without an answer
// (see conn.refuse).
var errNotHTTP = refuse(http.StatusBadRequest, "request line names no HTTP version")

// errNeedMore says the buffer holds no complete head yet.
var errNeedMore = errors.New("http1: incomplete head")

// Request is a parsed request head. Its byte slices, and the fields of
// Header, point into the read buffer it was parsed from and are valid until
// the next request is parsed on the connection.
type Request struct {
	// Header holds :method, :path, :authority (from Host, or from an
	// absolute-form target) and :scheme (Scheme, when set), then every
	// field as received except Host.
	Header stream.HeaderMap
	// Scheme is the connection's scheme ("http" or "https"), which the
	// parser adds as :scheme with the other pseudo-headers: added after
	// the regular fields (by the connection manager, as it does for a
	// codec that leaves it out) it shifted them all, some 190
	// instructions a request. Nil adds none. It is the connection's, not
	// the request's: reset keeps it.
	Scheme []byte
	Method []byte
	// Target is the request-target as received; Path is its path and
	// query (the whole target but for absolute form).
	Target, Path, Authority []byte
	Minor                   int // 0 for HTTP/1.0, 1 for HTTP/1.1

	// ContentLength is the body's length: -1 with Chunked, 0 when the
	// request has no body.
	ContentLength int64
	Chunked       bool
	// KeepAlive says the connection may carry another request after this
	// one (HTTP/1.1 without "close", HTTP/1.0 with "keep-alive").
	KeepAlive bool
	Expect100 bool
	// Upgrade is set when Connection names "upgrade" and an Upgrade field
	// is present (WebSocket, h2c).
	Upgrade bool
}

// addScheme adds :scheme once the head's :authority is known.
func (r *Request) addScheme() {
	if r.Scheme != nil {
		r.Header.AddPseudo(stream.PseudoScheme, r.Scheme)
	}
}

// reset clears the request for the next head, keeping Header's storage
// and Scheme. Field by field: "*r = Request{Header: r.Header, ...}" built
// the whole struct on the stack and copied it over, some five cache lines
// of code a request (TestRequestReset holds it to every field).
func (r *Request) reset() {
	r.Header.Reset()
	r.Method, r.Target, r.Path, r.Authority = nil, nil, nil, nil
	r.Minor, r.ContentLength = 0, 0
	r.Chunked, r.KeepAlive, r.Expect100, r.Upgrade = false, false, false, false
}

// ParseRequest parses one request head from buf and returns its length.
// Field names are lower-cased in place. With no complete head in buf it
// returns errNeedMore (or a 431 once buf holds more than the limit); any
// other error is an *Error.
func ParseRequest(buf []byte, req *Request, lim Limits) (int, error) {
	// The common head here: no empty lines before it, every line
	// complete and of the common form (scanField), a Host, no
	// Transfer-Encoding. Any other head, and any error, the long way from
	// its start (parseRequestSlow, out of line with the cases the plain
	// request never takes), which gives this one the same answer.
	req.reset()
	max := lim.headerBytes()
	if len(buf) > 0 && buf[0] == '\r' {
		return parseRequestSlow(buf, req, lim)
	}
	line, i, err := nextLine(buf, 0, 0, max)
	if err != nil || parseRequestLine(line, req) != nil {
		return parseRequestSlow(buf, req, lim)
	}
	req.Header.AddPseudo(stream.PseudoMethod, req.Method)
	req.Header.AddPseudo(stream.PseudoPath, req.Path)
	if req.Authority != nil {
		req.Header.AddPseudo(stream.PseudoAuthority, req.Authority)
		req.addScheme()
	}
	var hf requestHeadFields
	fields, maxFields := 0, lim.headers()
	for {
		name, value, next, ok := scanField(buf, i, 0, max)
		if !ok {
			return parseRequestSlow(buf, req, lim)
		}
		i = next
		if name == nil {
			break
		}
		if fields++; fields > maxFields {
			return parseRequestSlow(buf, req, lim)
		}
		if len(name) == len("host") && string(name) == "host" && hf.hosts == 0 && validHost(value) {
			// The head's one Host, taken as field takes it, without the
			// call: the plain request's only field the parser looks at.
			hf.hosts = 1
			if req.Authority == nil {
				req.Authority = value
				req.Header.AddPseudo(stream.PseudoAuthority, value)
				req.addScheme()
			}
			continue
		}
		if len(name) < 32 && requestFieldNames[name[0]]>>len(name)&1 != 0 {
			add, err := hf.field(req, name, value)
			if err != nil {
				return parseRequestSlow(buf, req, lim)
			}
			if !add {
				continue
			}
		}
		req.Header.AddParsed(name, value) // scanField checked it
	}
	if hf.hosts == 0 || hf.teSeen {
		return parseRequestSlow(buf, req, lim)
	}
	hf.settle(req)
	return i, nil
}

// parseRequestSlow is ParseRequest for any head.
//
//go:noinline
func parseRequestSlow(buf []byte, req *Request, lim Limits) (int, error) {
	req.reset()
	max := lim.headerBytes()
	i := 0
	// RFC 9112 section 2.2: ignore empty lines before the request line.
	for i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n' && i < 8 {
		i += 2
	}
	start := i
	line, next, err := nextLine(buf, i, start, max)
	if err != nil {
		return 0, err
	}
	if err := parseRequestLine(line, req); err != nil {
		return 0, err
	}
	i = next

	req.Header.AddPseudo(stream.PseudoMethod, req.Method)
	req.Header.AddPseudo(stream.PseudoPath, req.Path)
	// :scheme follows :authority, where it was inserted before the
	// codec added it (a filter listing the pseudo-headers sees the same
	// order), or ends the pseudo-headers when the head has no authority.
	if req.Authority != nil {
		req.Header.AddPseudo(stream.PseudoAuthority, req.Authority)
		req.addScheme()
	}
	var (
		fields int
		hf     requestHeadFields
	)
	for {
		// The common line in one pass; any other the long way, which
		// refuses it or waits for the rest of it.
		name, value, next, ok := scanField(buf, i, start, max)
		var line []byte
		if !ok {
			var err error
			if line, next, err = nextLine(buf, i, start, max); err != nil {
				return 0, err
			}
		}
		i = next
		if ok && name == nil || !ok && len(line) == 0 {
			break // the empty line ending the head
		}
		fields++
		if fields > lim.headers() {
			return 0, refuse(http.StatusRequestHeaderFieldsTooLarge, "too many header fields")
		}
		if !ok {
			var err error
			if name, value, err = parseField(line); err != nil {
				return 0, err
			}
		}
		// The fields the parser looks at, told apart from the others by
		// first byte and length (a name is never empty here) before
		// their names are compared, out of line: the plain request's
		// only one is Host.
		if len(name) < 32 && requestFieldNames[name[0]]>>len(name)&1 != 0 {
			add, err := hf.field(req, name, value)
			if err != nil {
				return 0, err
			}
			if !add {
				continue
			}
		}
		req.Header.AddParsed(name, value) // parseField checked it
	}

	if req.Minor >= 1 && hf.hosts == 0 && req.Authority == nil {
		return 0, refuse(http.StatusBadRequest, "missing Host")
	}
	if _, ok := req.Header.GetPseudo(stream.PseudoScheme); !ok {
		req.addScheme() // no authority (HTTP/1.0 without Host)
	}
	if hf.teSeen {
		// RFC 9112 section 6.1 and 6.3: a request with both is an attempt
		// at smuggling (nginx and Envoy refuse it); HTTP/1.0 has no
		// chunked coding.
		if hf.clSeen {
			return 0, refuse(http.StatusBadRequest, "both Content-Length and Transfer-Encoding")
		}
		if req.Minor == 0 {
			return 0, refuse(http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request")
		}
		req.ContentLength = -1
	}
	hf.settle(req)
	return i, nil
}

// requestHeadFields is what ParseRequest learns from the fields it looks
// at (requestHeadFields.field).
type requestHeadFields struct {
	hosts                    int
	clSeen, teSeen           bool
	closeTok, keepAliveTok   bool
	upgradeTok, upgradeField bool
}

// settle sets what the head's fields decide together, once all are read:
// keep-alive (HTTP/1.1's by default, HTTP/1.0's when asked for, unless
// Connection says close) and an upgrade (the token and the field).
func (hf *requestHeadFields) settle(req *Request) {
	if req.Minor >= 1 {
		req.KeepAlive = !hf.closeTok
	} else {
		req.KeepAlive = hf.keepAliveTok && !hf.closeTok
	}
	req.Upgrade = hf.upgradeTok && hf.upgradeField
}

// requestFieldNames has, for a field name's first byte, bit n set when a
// name of that byte and length n is one requestHeadFields.field looks at
// (host, content-length, transfer-encoding, connection, expect,
// upgrade).
var requestFieldNames = func() (t [256]uint32) {
	for _, s := range []string{"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"} {
		t[s[0]] |= 1 << len(s)
	}
	return t
}()

// field takes a request field whose name requestFieldNames marks (or
// another of its first byte and length, which it adds as it is), and
// says whether the field goes into the header map (Host does not: it is
// :authority in the model). Out of line: see ParseRequest.
//
//go:noinline
func (hf *requestHeadFields) field(req *Request, name, value []byte) (add bool, err error) {
	switch string(name) {
	case "host":
		hf.hosts++
		if hf.hosts > 1 {
			return false, refuse(http.StatusBadRequest, "more than one Host")
		}
		if !validHost(value) {
			return false, refuse(http.StatusBadRequest, "invalid Host")
		}
		if req.Authority == nil {
			req.Authority = value
			req.Header.AddPseudo(stream.PseudoAuthority, value)
			req.addScheme()
		}
		return false, nil
	case "content-length":
		n, ok := parseContentLength(value)
		if !ok {
			return false, refuse(http.StatusBadRequest, "invalid Content-Length")
		}
		if hf.clSeen && n != req.ContentLength {
			return false, refuse(http.StatusBadRequest, "differing Content-Length values")
		}
		hf.clSeen, req.ContentLength = true, n
	case "transfer-encoding":
		if hf.teSeen {
			// A second field continues the list: chunked, seen in the
			// first, would be applied twice or no longer last.
			return false, refuse(http.StatusBadRequest, "Transfer-Encoding repeated")
		}
		if err := checkTransferEncoding(value); err != nil {
			return false, err
		}
		hf.teSeen, req.Chunked = true, true
	case "connection":
		hf.closeTok, hf.keepAliveTok, hf.upgradeTok = connectionTokens(value, hf.closeTok, hf.keepAliveTok, hf.upgradeTok)
	case "expect":
		if !asciiEqualFold(value, "100-continue") {
			return false, refuse(http.StatusExpectationFailed, "unsupported expectation")
		}
		req.Expect100 = req.Minor >= 1
	case "upgrade":
		hf.upgradeField = true
	}
	return true, nil
}

// scanField is nextLine and parseField in one pass for the common field
// line: a token name, a colon, spaces, a value without control
// characters, CRLF. It lower-cases the name in place as parseField does
// and returns what those two would (name nil for the empty line that ends
// a head) and ok; for any other line it returns ok false and the caller
// takes the long way, which refuses the line or waits for the rest of it
// exactly as before (FuzzScanField holds the two to each other).
//
// The two passes cost some 190 instructions a field (a call to
// IndexByte for the line's end, another walk for control characters);
// here the value is looked at eight bytes a turn for its first control
// character, which on a plain line is the CR that ends it.
func scanField(buf []byte, i, start, max int) (name, value []byte, next int, ok bool) {
	if i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n' {
		return nil, nil, i + 2, i+2-start <= max
	}
	j := i
	for ; j < len(buf); j++ {
		l := tokenLower[buf[j]]
		if l == 0 {
			break
		}
		buf[j] = l // lower-cased as parseField would: the long way's scan does it again
	}
	if j == i || j == len(buf) || buf[j] != ':' {
		return nil, nil, 0, false
	}
	v := j + 1
	for v < len(buf) && buf[v] == ' ' {
		v++
	}
	// A HTAB is a control character to firstCTL: a value with one (and
	// leading or trailing HTABs) takes the long way.
	e := firstCTL(buf, v)
	if e+1 >= len(buf) || buf[e] != '\r' || buf[e+1] != '\n' || e+2-start > max {
		return nil, nil, 0, false
	}
	next = e + 2
	for e > v && buf[e-1] == ' ' {
		e--
	}
	return buf[i:j], buf[v:e], next, true
}

// firstCTL is the index of the first byte of b from i on that is a
// control character (HTAB included) or DEL, or len(b).
func firstCTL(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		// stream.CTLMask marks exactly those bytes (HTAB too): the lowest mark
		// is the first of them.
		if m := stream.CTLMask(binary.LittleEndian.Uint64(b[i : i+8 : i+8])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < ' ' || c == 0x7f {
			return i
		}
	}
	return i
}

// nextLine returns the line starting at i (without its CRLF) and where the
// next one starts. Lines end in CRLF: a bare LF, or a CR not followed by
// LF, is refused (RFC 9112 section 2.2 lets a recipient refuse them, and
// accepting what another hop reads differently is how smuggling starts).
func nextLine(buf []byte, i, start, max int) ([]byte, int, error) {
	nl := bytes.IndexByte(buf[i:], '\n')
	if nl < 0 {
		if len(buf)-start > max {
			return nil, 0, refuse(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
		}
		return nil, 0, errNeedMore
	}
	end := i + nl
	if end+1-start > max {
		return nil, 0, refuse(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
	}
	if nl == 0 || buf[end-1] != '\r' {
		return nil, 0, refuse(http.StatusBadRequest, "line not ended by CRLF")
	}
	return buf[i : end-1], end + 1, nil
}

// parseRequestLine reads the request line into req: the method, the
// target in its four forms, the version.
func parseRequestLine(line []byte, req *Request) error {
	// The common line, an origin-form target and HTTP/1.1 or 1.0, here;
	// any other, and any error, the long way (parseRequestLineSlow, out
	// of line with the forms and refusals the plain request never
	// takes), which gives this one the same answer.
	if sp := bytes.IndexByte(line, ' '); sp > 0 && len(line)-sp >= len(" / HTTP/1.1") {
		target, version := line[sp+1:len(line)-len(" HTTP/1.1")], line[len(line)-len(" HTTP/1.1"):]
		if target[0] == '/' && string(version[:len(" HTTP/1.")]) == " HTTP/1." && (version[8] == '1' || version[8] == '0') &&
			validToken(line[:sp]) && validTarget(target) {
			req.Method, req.Target, req.Path = line[:sp], target, target
			req.Minor = int(version[8] - '0')
			return nil
		}
	}
	return parseRequestLineSlow(line, req)
}

// validTarget says whether a request target holds no space, control
// character or DEL.
func validTarget(t []byte) bool {
	for _, c := range t {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseRequestLineSlow is parseRequestLine for any line.
//
//go:noinline
func parseRequestLineSlow(line []byte, req *Request) error {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return refuse(http.StatusBadRequest, "malformed request line")
	}
	req.Method = line[:sp]
	for _, c := range req.Method {
		if !isTchar(c) {
			return refuse(http.StatusBadRequest, "invalid method")
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return refuse(http.StatusBadRequest, "malformed request line")
	}
	target, version := rest[:sp], rest[sp+1:]
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return refuse(http.StatusBadRequest, "invalid request target")
		}
	}
	if len(version) < 5 || string(version[:5]) != "HTTP/" {
		return errNotHTTP
	}
	if len(version) != 8 || version[6] != '.' || !isDigit(version[5]) || !isDigit(version[7]) {
		return refuse(http.StatusBadRequest, "malformed HTTP version")
	}
	if version[5] != '1' {
		return refuse(http.StatusHTTPVersionNotSupported, "HTTP version not supported")
	}
	req.Minor = 1
	if version[7] == '0' {
		req.Minor = 0
	}
	req.Target = target
	// RFC 9112 section 3.2: the four forms, each only where it belongs.
	switch {
	case target[0] == '/':
		req.Path = target
	case string(req.Method) == "CONNECT":
		if bytes.IndexByte(target, '/') >= 0 || !validHost(target) {
			return refuse(http.StatusBadRequest, "invalid authority-form target")
		}
		req.Authority = target
	case len(target) == 1 && target[0] == '*':
		if string(req.Method) != "OPTIONS" {
			return refuse(http.StatusBadRequest, "asterisk-form target outside OPTIONS")
		}
		req.Path = target
	default:
		// absolute-form: scheme "://" authority path; its authority wins
		// over Host (section 3.2.2).
		var rest []byte
		switch {
		case asciiHasPrefixFold(target, "http://"):
			rest = target[7:]
		case asciiHasPrefixFold(target, "https://"):
			rest = target[8:]
		default:
			return refuse(http.StatusBadRequest, "invalid request target")
		}
		slash := bytes.IndexAny(rest, "/?")
		auth, path := rest, []byte("/")
		if slash >= 0 {
			auth, path = rest[:slash], rest[slash:]
			if path[0] == '?' {
				// "http://h?q" would need a "/" inserted; nothing sends it.
				return refuse(http.StatusBadRequest, "absolute-form target without a path")
			}
		}
		if len(auth) == 0 || !validHost(auth) {
			return refuse(http.StatusBadRequest, "invalid authority in request target")
		}
		req.Authority, req.Path = auth, path
	}
	return nil
}

// parseField splits a field line, lower-casing the name in place. RFC 9112
// section 5: no whitespace before the colon, no obs-fold (a line starting
// with whitespace), a value of visible characters, SP, HTAB and obs-text.
func parseField(line []byte) (name, value []byte, err error) {
	// The name's scan finds the colon itself (it is no token character):
	// a field that is not token, colon, value takes the long way, which
	// tells its errors apart.
	j := 0
	for ; j < len(line); j++ {
		l := tokenLower[line[j]]
		if l == 0 {
			break
		}
		line[j] = l
	}
	if j == 0 || j == len(line) || line[j] != ':' {
		return parseFieldSlow(line)
	}
	value = stream.TrimOWS(line[j+1:])
	if stream.HasCTL(value) {
		return nil, nil, refuse(http.StatusBadRequest, "invalid header field value")
	}
	return line[:j], value, nil
}

// parseFieldSlow is parseField for a line that is not token, colon,
// value: it finds what is wrong with it.
func parseFieldSlow(line []byte) (name, value []byte, err error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return nil, nil, refuse(http.StatusBadRequest, "obsolete line folding")
		}
		return nil, nil, refuse(http.StatusBadRequest, "malformed header field")
	}
	name = line[:colon]
	for j, c := range name {
		l := tokenLower[c]
		if l == 0 {
			if j == 0 && (c == ' ' || c == '\t') {
				return nil, nil, refuse(http.StatusBadRequest, "obsolete line folding")
			}
			return nil, nil, refuse(http.StatusBadRequest, "invalid header field name")
		}
		if l != c {
			name[j] = l
		}
	}
	value = stream.TrimOWS(line[colon+1:])
	if stream.HasCTL(value) {
		return nil, nil, refuse(http.StatusBadRequest, "invalid header field value")
	}
	return name, value, nil
}

// parseContentLength takes 1*DIGIT, or a list of identical values (RFC
// 9112 section 6.3 lets a recipient accept "42, 42").
func parseContentLength(v []byte) (int64, bool) {
	// One number, nearly always: without walking it as a list (a call
	// through the token iterator's closure, for every response written).
	if n, ok := parseDigits(v); ok {
		return n, true
	}
	n := int64(-1)
	ok := true
	forEachToken(v, func(tok []byte) {
		if !ok {
			return
		}
		var x int64
		if len(tok) == 0 || len(tok) > 18 {
			ok = false
			return
		}
		for _, c := range tok {
			if !isDigit(c) {
				ok = false
				return
			}
			x = x*10 + int64(c-'0')
		}
		if n >= 0 && x != n {
			ok = false
		}
		n = x
	})
	return n, ok && n >= 0
}

// checkTransferEncoding accepts exactly "chunked". Chunked not last makes
// the length unknowable (400, section 6.3); other codings before it are
// not implemented here (501, section 6.1).
func checkTransferEncoding(v []byte) error {
	var toks, chunked int
	last := false
	forEachToken(v, func(tok []byte) {
		toks++
		last = asciiEqualFold(tok, "chunked")
		if last {
			chunked++
		}
	})
	switch {
	case toks == 0 || !last:
		return refuse(http.StatusBadRequest, "Transfer-Encoding does not end in chunked")
	case chunked > 1:
		return refuse(http.StatusBadRequest, "chunked applied more than once")
	case toks > 1:
		return refuse(http.StatusNotImplemented, "unsupported transfer coding")
	}
	return nil
}

// connectionTokens adds to close, keepAlive and upgrade what a Connection
// value says. A value of one option, as nearly every client and upstream
// sends ("keep-alive", "close"), is settled without walking it as a list
// (a call through the token iterator's closure).
func connectionTokens(v []byte, close, keepAlive, upgrade bool) (bool, bool, bool) {
	switch {
	case asciiEqualFold(v, "keep-alive"):
		return close, true, upgrade
	case asciiEqualFold(v, "close"):
		return true, keepAlive, upgrade
	}
	forEachToken(v, func(tok []byte) {
		switch {
		case asciiEqualFold(tok, "close"):
			close = true
		case asciiEqualFold(tok, "keep-alive"):
			keepAlive = true
		case asciiEqualFold(tok, "upgrade"):
			upgrade = true
		}
	})
	return close, keepAlive, upgrade
}

// forEachToken calls fn with each comma-separated element of a list,
// trimmed of whitespace; empty elements are skipped (stream.Tokens).
func forEachToken(v []byte, fn func([]byte)) {
	for tok := range stream.Tokens(v) {
		fn(tok)
	}
}

// validHost accepts the characters of RFC 3986's host and port (reg-name,
// IP literal in brackets, percent-encoding).
func validHost(h []byte) bool {
	for _, c := range h {
		if !hostChar[c] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isTchar: RFC 9110 section 5.6.2.
func isTchar(c byte) bool { return tokenLower[c] != 0 }

func asciiEqualFold(b []byte, s string) bool { return stream.EqualFold(b, s) }

func asciiHasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}
