package http1

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

func parse(t testing.TB, raw string) (*Request, int, error) {
	t.Helper()
	var req Request
	n, err := ParseRequest([]byte(raw), &req, Limits{MaxHeaderBytes: 1024, MaxHeaders: 10})
	return &req, n, err
}

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Every framing rule of RFC 9112 the parser enforces, one row each: the
// status it answers (0: accepted).
func TestParseRequestFraming(t *testing.T) {
	tests := []struct {
		name, raw string
		status    int
	}{
		{"simple", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"http/1.0 without host", "GET / HTTP/1.0\r\n\r\n", 0},
		{"content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 0},
		{"same content-length twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0},
		{"content-length list of equal values", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 0},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
		{"chunked any case", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n", 0},
		{"options asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"connect authority", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 0},
		{"absolute form", "GET http://a/x?y HTTP/1.1\r\nHost: b\r\n\r\n", 0},
		{"obs-text value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", 0},

		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
		{"differing content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
		{"differing content-length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400},
		{"negative content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"signed content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400},
		{"hex content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400},
		{"overflowing content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"empty content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400},
		{"TE not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"TE chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
		{"TE split over fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE other coding before chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"TE with junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
		{"TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n", 400},
		{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nX Y: a\r\n\r\n", 400},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nXY\r\n\r\n", 400},
		{"bare LF in head", "GET / HTTP/1.1\nHost: a\n\n", 400},
		{"bare LF after field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"invalid host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"two spaces in request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"trailing space in request line", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
		{"tab in request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: a\r\n\r\n", 400},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
		{"HTTP/2.0 text", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"control in target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"relative target", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"asterisk outside OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 417},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 10) + "\r\n", 431},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("y", 1100) + "\r\n\r\n", 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := parse(t, tt.raw)
			if got := statusOf(err); got != tt.status || (tt.status == 0 && err != nil) {
				t.Fatalf("status %d (err %v), want %d", got, err, tt.status)
			}
			if tt.status == 0 && n != len(tt.raw) {
				t.Fatalf("consumed %d of %d bytes", n, len(tt.raw))
			}
		})
	}
}

func TestParseRequestIncomplete(t *testing.T) {
	full := "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
	for i := 0; i < len(full); i++ {
		if _, _, err := parse(t, full[:i]); err != errNeedMore {
			t.Fatalf("prefix of %d bytes: %v, want errNeedMore", i, err)
		}
	}
	// A head that never ends is refused once past the limit.
	if _, _, err := parse(t, "GET / HTTP/1.1\r\nX: "+strings.Repeat("y", 2000)); statusOf(err) != 431 {
		t.Fatalf("endless head: %v, want 431", err)
	}
}

func TestParseRequestModel(t *testing.T) {
	req, _, err := parse(t, "POST /a?b=1 HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nX-Multi: 1\r\nx-multi: 2\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for n, v := range req.Header.All() {
		got = append(got, string(n)+"="+string(v))
	}
	want := ":method=POST :path=/a?b=1 :authority=example.com content-type=text/plain x-multi=1 x-multi=2 connection=keep-alive, Upgrade upgrade=websocket content-length=7 expect=100-continue"
	if strings.Join(got, " ") != want {
		t.Fatalf("header map:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if req.ContentLength != 7 || req.Chunked || !req.KeepAlive || !req.Upgrade || !req.Expect100 || req.Minor != 1 {
		t.Fatalf("framing: %+v", req)
	}

	tests := []struct {
		raw       string
		keepAlive bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n", false},
		{"GET / HTTP/1.0\r\n\r\n", false},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
		{"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
	}
	for _, tt := range tests {
		req, _, err := parse(t, tt.raw)
		if err != nil || req.KeepAlive != tt.keepAlive {
			t.Errorf("%q: keep-alive %v (err %v), want %v", tt.raw, req.KeepAlive, err, tt.keepAlive)
		}
	}

	req, _, err = parse(t, "GET http://origin:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n")
	if err != nil || string(req.Authority) != "origin:8080" || string(req.Path) != "/x?y" {
		t.Fatalf("absolute form: authority %q path %q (%v)", req.Authority, req.Path, err)
	}
}

func TestChunkSize(t *testing.T) {
	tests := []struct {
		line string
		n    int64
		ok   bool
	}{
		{"5", 5, true},
		{"00a", 10, true},
		{"Ff", 255, true},
		{"5;ext=1", 5, true},
		{"5 ;ext", 5, true},
		{"fffffffffffffff", 1<<60 - 1, true},
		{"", 0, false},
		{"0x5", 0, false},
		{"-5", 0, false},
		{"+5", 0, false},
		{" 5", 0, false},
		{"5x", 0, false},
		{"g", 0, false},
		{"1000000000000000", 0, false}, // 16 digits: past any body sluice takes
		{"ffffffffffffffffffff", 0, false},
		{"5;\x00", 0, false},
	}
	for _, tt := range tests {
		n, err := parseChunkSize([]byte(tt.line))
		if (err == nil) != tt.ok || n != tt.n {
			t.Errorf("%q: %d %v, want %d ok=%v", tt.line, n, err, tt.n, tt.ok)
		}
	}
}

// Parsing a typical request into a reused Request allocates nothing.
func TestParseRequestNoAllocs(t *testing.T) {
	raw := []byte(typicalRequest)
	buf := make([]byte, len(raw))
	var req Request
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf, raw)
		if _, err := ParseRequest(buf, &req, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per parse, want 0", allocs)
	}
}

const typicalRequest = "GET /api/v1/items?page=2 HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc\r\n" +
	"Cookie: session=abcdef0123456789\r\n" +
	"X-Request-Id: 5f2b7c1e-0d7a-4b8e-9d3c-2f1a0b9c8d7e\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

func BenchmarkParseRequest(b *testing.B) {
	raw := []byte(typicalRequest)
	buf := make([]byte, len(raw))
	var req Request
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		copy(buf, raw)
		if _, err := ParseRequest(buf, &req, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// The body's end comes with its last bytes when it is already known (a
// Content-Length body, or a chunked one whose last chunk and trailers are
// buffered): the proxy passes that read on as data with end_of_stream.
func TestBodyEndWithLastBytes(t *testing.T) {
	tests := []struct {
		name, head, body string
		reads            []string // each read's data, "EOF" marking io.EOF with it
	}{
		{"content-length", "Content-Length: 5", "hello", []string{"hello EOF"}},
		{"chunked, all buffered", "Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", []string{"hello EOF"}},
		{"chunked, two chunks", "Transfer-Encoding: chunked", "2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", []string{"he", "llo EOF"}},
		{"chunked, end not yet sent", "Transfer-Encoding: chunked", "5\r\nhello\r\n", []string{"hello", "unexpected EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "POST / HTTP/1.1\r\nHost: a\r\n" + tt.head + "\r\n\r\n" + tt.body
			var req Request
			n, err := ParseRequest([]byte(raw), &req, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var c connReader
			c.init(strings.NewReader(raw[n:]))
			defer c.release()
			var b bodyReader
			b.reset(&c, &req, Limits{})
			var got []string
			buf := make([]byte, 64)
			for len(got) < 4 {
				n, err := b.Read(buf)
				s := string(buf[:n])
				if err != nil {
					s = strings.TrimSpace(s + " " + err.Error())
				}
				got = append(got, s)
				if err != nil {
					break
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.reads, "|") {
				t.Fatalf("reads %q, want %q", got, tt.reads)
			}
		})
	}
}

// TestSingleValueShortcuts: Content-Length and Connection values of one
// element are settled without walking them as lists; every value here
// gets the answer the list walk gives.
func TestSingleValueShortcuts(t *testing.T) {
	listLength := func(v []byte) (int64, bool) {
		n, ok := int64(-1), true
		forEachToken(v, func(tok []byte) {
			x, good := parseDigits(tok)
			if !good || n >= 0 && x != n {
				ok = false
			}
			n = x
		})
		return n, ok && n >= 0
	}
	for _, v := range []string{"0", "42", "0042", "123456789012345678", "1234567890123456789", "", " ", "42, 42", "42,43", "4 2", "+4", "-1", "0x5", ",42", "42,"} {
		n, ok := parseContentLength([]byte(v))
		wn, wok := listLength([]byte(v))
		if ok != wok || ok && n != wn {
			t.Errorf("Content-Length %q: %d %v, the list walk %d %v", v, n, ok, wn, wok)
		}
	}
	for _, v := range []string{"keep-alive", "Keep-Alive", "close", "CLOSE", "upgrade", "Upgrade", "keep-alive, close", "close,upgrade", " keep-alive", "keep-alivex", "closed", "", ",", "te, x"} {
		c, k, u := connectionTokens([]byte(v), false, false, false)
		var wc, wk, wu bool
		forEachToken([]byte(v), func(tok []byte) {
			wc = wc || asciiEqualFold(tok, "close")
			wk = wk || asciiEqualFold(tok, "keep-alive")
			wu = wu || asciiEqualFold(tok, "upgrade")
		})
		if c != wc || k != wk || u != wu {
			t.Errorf("Connection %q: close %v keep-alive %v upgrade %v, the list walk %v %v %v", v, c, k, u, wc, wk, wu)
		}
		// What an earlier Connection field said stays.
		if c, k, u := connectionTokens([]byte(v), true, true, true); !c || !k || !u {
			t.Errorf("Connection %q after one with every option: %v %v %v", v, c, k, u)
		}
	}
}

// fillFields sets every field of the struct v points to to a non-zero
// value (a header map gets a field), for the reset tests.
func fillFields(t *testing.T, v reflect.Value) {
	t.Helper()
	v = v.Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if !f.CanSet() {
			f = reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Elem()
		}
		switch f.Kind() {
		case reflect.Slice:
			f.Set(reflect.ValueOf([]byte("x")))
		case reflect.Int, reflect.Int64:
			f.SetInt(7)
		case reflect.Uint8:
			f.SetUint(7)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Func:
			f.Set(reflect.MakeFunc(f.Type(), func([]reflect.Value) []reflect.Value { return nil }))
		case reflect.Interface:
			f.Set(reflect.ValueOf(errors.New("x")))
		case reflect.Struct:
			switch h := f.Addr().Interface().(type) {
			case *stream.HeaderMap:
				h.AddRaw([]byte("a"), []byte("b"))
			case *Limits:
				*h = Limits{MaxHeaderBytes: 7, MaxHeaders: 7}
			default:
				t.Fatalf("field %s of type %s: teach the test (and the reset)", v.Type().Field(i).Name, f.Type())
			}
		default:
			t.Fatalf("field %s of kind %s: teach the test (and the reset)", v.Type().Field(i).Name, f.Kind())
		}
	}
}

// checkCleared fails for each field of the struct v points to that is
// not zero, but for the header maps (which must be empty) and the fields
// kept.
func checkCleared(t *testing.T, v reflect.Value, kept ...string) {
	t.Helper()
	v = v.Elem()
next:
	for i := 0; i < v.NumField(); i++ {
		name, f := v.Type().Field(i).Name, v.Field(i)
		for _, k := range kept {
			if name == k {
				continue next
			}
		}
		if h, ok := reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Interface().(*stream.HeaderMap); ok {
			if h.Len() != 0 {
				t.Errorf("%s not emptied", name)
			}
			continue
		}
		if !f.IsZero() {
			t.Errorf("%s not cleared", name)
		}
	}
}

// TestRequestReset: reset clears every field of the request but Header
// (emptied, its storage kept) and Scheme (the connection's), field by
// field; a field added to Request and not to reset fails here. The same
// for Response.reset and bodyReader.start.
func TestRequestReset(t *testing.T) {
	var r Request
	fillFields(t, reflect.ValueOf(&r))
	r.reset()
	checkCleared(t, reflect.ValueOf(&r), "Scheme")
	if string(r.Scheme) != "x" {
		t.Errorf("Scheme not kept")
	}

	var resp Response
	fillFields(t, reflect.ValueOf(&resp))
	resp.reset()
	checkCleared(t, reflect.ValueOf(&resp))

	var b bodyReader
	fillFields(t, reflect.ValueOf(&b))
	c := new(connReader)
	b.start(c, Limits{MaxHeaders: 3}, true)
	checkCleared(t, reflect.ValueOf(&b), "c", "lim", "chunked")
	if b.c != c || b.lim != (Limits{MaxHeaders: 3}) || !b.chunked {
		t.Errorf("start did not set c, lim, chunked: %+v", b)
	}
}

// TestParseRequestLineFast holds parseRequestLine's common-line path to
// the long way (parseRequestLineSlow): the same request or the same error
// for lines near the common one, and for every one-byte change of them.
func TestParseRequestLineFast(t *testing.T) {
	lines := []string{
		"GET / HTTP/1.1", "GET / HTTP/1.0", "GET /a?b=c HTTP/1.1", "POST /x HTTP/1.2", "GET / HTTP/2.0",
		"GET  / HTTP/1.1", "GET / HTTP/1.1 ", "GET /  HTTP/1.1", "GET /a b HTTP/1.1", "G(T / HTTP/1.1",
		" / HTTP/1.1", "GET / http/1.1", "GET / HTTP/1.", "GET / HTTP/1.11", "GET /\x7f HTTP/1.1",
		"GET * HTTP/1.1", "OPTIONS * HTTP/1.1", "CONNECT a:1 HTTP/1.1", "GET http://a/b HTTP/1.1",
		"GET / HTTP/1.x", "GET /HTTP/1.1", "GET/ HTTP/1.1", "X / HTTP/1.1", "GET / XTTP/1.1",
	}
	check := func(line string) {
		var fast, slow Request
		errF := parseRequestLine([]byte(line), &fast)
		errS := parseRequestLineSlow([]byte(line), &slow)
		if fmt.Sprint(errF) != fmt.Sprint(errS) {
			t.Fatalf("%q: error %v, the long way %v", line, errF, errS)
		}
		if errS == nil && (string(fast.Method) != string(slow.Method) || string(fast.Target) != string(slow.Target) ||
			string(fast.Path) != string(slow.Path) || string(fast.Authority) != string(slow.Authority) || fast.Minor != slow.Minor) {
			t.Fatalf("%q: %+v, the long way %+v", line, fast, slow)
		}
	}
	for _, line := range lines {
		check(line)
		for i := 0; i < len(line); i++ {
			for _, c := range []byte{' ', '/', '0', '1', '2', 'H', '.', '\t', 0x7f, 'a', '*'} {
				b := []byte(line)
				b[i] = c
				check(string(b))
			}
		}
	}
}

// TestParseRequestFast holds ParseRequest's common head to the long way
// (parseRequestSlow): the same request or the same error for heads near
// the common one, every one-byte change and every cut of them.
func TestParseRequestFast(t *testing.T) {
	heads := []string{
		"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: h2load\r\nAccept: */*\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET http://x/y HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHosx: b\r\nX:  v \r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\tb\r\nHost: a\r\n\r\n",
	}
	check := func(head string, lim Limits, scheme []byte) {
		fast, slow := Request{Scheme: scheme}, Request{Scheme: scheme}
		nF, errF := ParseRequest([]byte(head), &fast, lim)
		nS, errS := parseRequestSlow([]byte(head), &slow, lim)
		if nF != nS || fmt.Sprint(errF) != fmt.Sprint(errS) {
			t.Fatalf("%q: %d %v, the long way %d %v", head, nF, errF, nS, errS)
		}
		if errS != nil {
			return
		}
		if string(fast.Method) != string(slow.Method) || string(fast.Target) != string(slow.Target) ||
			string(fast.Path) != string(slow.Path) || string(fast.Authority) != string(slow.Authority) ||
			fast.Minor != slow.Minor || fast.ContentLength != slow.ContentLength || fast.Chunked != slow.Chunked ||
			fast.KeepAlive != slow.KeepAlive || fast.Expect100 != slow.Expect100 || fast.Upgrade != slow.Upgrade ||
			fast.Header.Len() != slow.Header.Len() {
			t.Fatalf("%q: %+v, the long way %+v", head, fast, slow)
		}
		sameFields(t, head, &fast.Header, &slow.Header)
	}
	for _, head := range heads {
		for _, lim := range []Limits{{}, {MaxHeaders: 2}, {MaxHeaderBytes: 30}} {
			for _, scheme := range [][]byte{nil, []byte("http")} {
				nearHeads(head, []byte{' ', ':', '\r', '\n', '\t', 'A', '/', 0x7f, ','}, func(h string) { check(h, lim, scheme) })
			}
		}
	}
}
