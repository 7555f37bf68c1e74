package http1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// FuzzParseRequest feeds arbitrary bytes to the request parser and then
// to the body reader, as a connection would: nothing may panic, an
// accepted head must satisfy the framing invariants, and a body is either
// read to its end or refused.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		typicalRequest,
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: c\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		// Names of a word and more, in either case, with and without the
		// characters the word-at-a-time check leaves to the byte loop.
		"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For-Long: 1\r\nACCEPT-encoding9: x\r\nX_Under_Score_Name: y\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nAbcdefgh@ijk: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nAbcdefgh\x80ijk: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := append([]byte(nil), data...)
		var req Request
		lim := Limits{MaxHeaderBytes: 4096, MaxHeaders: 50}
		n, err := ParseRequest(buf, &req, lim)
		if err != nil {
			if _, ok := err.(*Error); !ok && err != errNeedMore {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if n <= 0 || n > len(buf) {
			t.Fatalf("consumed %d of %d", n, len(buf))
		}
		if req.Chunked && req.ContentLength != -1 || !req.Chunked && req.ContentLength < 0 {
			t.Fatalf("framing: chunked %v content-length %d", req.Chunked, req.ContentLength)
		}
		for name, value := range req.Header.All() {
			if !bytes.Equal(name, bytes.ToLower(name)) {
				t.Fatalf("name %q not lower-case", name)
			}
			if len(name) > 0 && name[0] == ':' {
				continue
			}
			// What the parser marks checked (AddParsed) a writer copies
			// as it is: a token name, a value without CTLs.
			for _, c := range name {
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0) {
					t.Fatalf("name %q holds %q, not a token character", name, c)
				}
			}
			for _, c := range value {
				if c < ' ' && c != '\t' || c == 0x7f {
					t.Fatalf("value %q of %q holds a CTL", value, name)
				}
			}
		}
		var c connReader
		c.init(bytes.NewReader(buf[n:]))
		defer c.release()
		var b bodyReader
		b.reset(&c, &req, lim)
		got, err := io.ReadAll(io.LimitReader(&b, 1<<20))
		if err == nil && b.Done() && !req.Chunked && int64(len(got)) != req.ContentLength {
			t.Fatalf("read %d body bytes, Content-Length %d", len(got), req.ContentLength)
		}
		if err != nil {
			if _, ok := err.(*Error); !ok && err != io.ErrUnexpectedEOF {
				t.Fatalf("body error of type %T: %v", err, err)
			}
		}
	})
}

// FuzzServeConn runs the whole connection loop (parse, stream, handler,
// response writer, body drain, keep-alive) over arbitrary client bytes:
// it must never panic or hang, and must answer something or close.
func FuzzServeConn(f *testing.F) {
	f.Add([]byte(typicalRequest + typicalRequest))
	f.Add([]byte("POST /a%20b?x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n3\r\nabc\r\n0\r\nX: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nrest"))
	f.Add([]byte("CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n"))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Path", r.URL.Path)
		if len(b) > 2 {
			w.(http.Flusher).Flush()
		}
		w.Write(b)
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &Server{StreamHandler: streamBridge{h}, Limits: Limits{MaxHeaderBytes: 4096, MaxHeaders: 50}}
		c := &fakeConn{r: bytes.NewReader(data)}
		s.ServeConn(c, nil)
		if !c.closed {
			t.Fatal("connection not closed")
		}
	})
}

// fakeConn is a client that sends data, then EOF.
type fakeConn struct {
	r      *bytes.Reader
	out    bytes.Buffer
	closed bool
}

func (c *fakeConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)        { return c.out.Write(p) }
func (c *fakeConn) Close() error                       { c.closed = true; return nil }
func (c *fakeConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(t time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzStreamResponse has a native stream handler answer with an arbitrary
// status, field, body pieces and trailer, on a connection with a second
// request behind the first: nothing may panic, the response must parse as
// one message with the body that was written (none where the status or
// method allows none), no field may appear that the handler did not add
// whole (response splitting), and the second request must be answered
// unless the first response closed the connection.
func FuzzStreamResponse(f *testing.F) {
	f.Add(uint16(200), "x-a", "1", []byte("hello"), uint8(0), false, "x-t", "2")
	f.Add(uint16(200), "trailer", "x-t", bytes.Repeat([]byte("b"), 5000), uint8(3), false, "x-t", "2")
	f.Add(uint16(204), "content-length", "7", []byte("dropped"), uint8(1), false, "", "")
	f.Add(uint16(200), "x-bad", "a\r\nx-injected: 1", []byte("ok"), uint8(2), true, "x\r\nx-injected", "1")
	f.Add(uint16(103), "link", "</a>", []byte("x"), uint8(0), false, "", "")
	f.Add(uint16(200), "bad name", "v", []byte("x"), uint8(0), true, "x-injected:", "1")
	f.Add(uint16(200), "content-length", "3", []byte("abcdef"), uint8(1), false, "", "")
	f.Fuzz(func(t *testing.T, status uint16, name, value string, body []byte, split uint8, head bool, tname, tvalue string) {
		code := int(status)
		if code < 100 || code > 999 {
			code = 100 + code%900
		}
		h := streamFunc(func(s stream.ServerStream) {
			if p, _ := s.RequestHeaders().Get(stream.Path); string(p) == "/next" {
				s.WriteHeaders(headers("200"), true)
				return
			}
			s.WriteHeaders(headers(itoa(code), name, value), false)
			if code < 200 && code != 101 {
				s.WriteHeaders(headers("200"), false)
			}
			// split picks how the body is written: whole with its end,
			// in two pieces, with a flush between, or ended by trailers.
			cut := len(body) / 2
			switch split % 4 {
			case 0:
				s.WriteBody(body, true)
				return
			case 1:
				s.WriteBody(body[:cut], false)
				s.WriteBody(body[cut:], true)
				return
			case 2:
				s.WriteBody(body[:cut], false)
				s.Flush()
				s.WriteBody(body[cut:], false)
			case 3:
				s.WriteBody(body, false)
			}
			s.WriteTrailers(trailers(tname, tvalue))
		})
		method := "GET"
		if head {
			method = "HEAD"
		}
		req := method + " / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n"
		s := &Server{StreamHandler: h}
		c := &fakeConn{r: bytes.NewReader([]byte(req))}
		s.ServeConn(c, nil)
		if code == 101 {
			return // the handler never upgraded: the connection just ends
		}
		raw := bytes.Clone(c.out.Bytes())
		checkHeads(t, raw)
		br := bufio.NewReader(&c.out)
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		for err == nil && resp.StatusCode < 200 {
			resp, err = http.ReadResponse(br, &http.Request{Method: method})
		}
		if err != nil {
			t.Fatalf("response: %v\n%q", err, raw)
		}
		got, err := io.ReadAll(resp.Body)
		want := body
		allowed := !head && resp.StatusCode != 204 && resp.StatusCode != 304
		if !allowed {
			want = nil
		}
		if resp.Header.Get("X-Injected") != "" || resp.Trailer.Get("X-Injected") != "" {
			t.Fatalf("a field was split: %q", raw)
		}
		// The map's Add lower-cases the name: "Content-length" declares a
		// length as well.
		declared := strings.EqualFold(name, "content-length") && resp.ContentLength >= 0 && resp.ContentLength != int64(len(body))
		if declared {
			// A declared length the body does not match: the connection
			// ends (short) or the excess is refused (long).
			return
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("body %q %v, want %q\n%q", got, err, want, raw)
		}
		if resp.Close {
			return
		}
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("second response: %v %v\n%q", resp, err, raw)
		}
	})
}

// checkHeads checks every head at the start of raw (interim ones and the
// final one): each field line a token name, a colon, and a value without
// control characters but HTAB.
func checkHeads(t *testing.T, raw []byte) {
	t.Helper()
	for {
		end := bytes.Index(raw, []byte("\r\n\r\n"))
		if end < 0 {
			t.Fatalf("no complete head in %q", raw)
		}
		lines := bytes.Split(raw[:end], []byte("\r\n"))
		for _, line := range lines[1:] {
			name, value, ok := bytes.Cut(line, []byte(": "))
			if !ok || !validFieldName(name) {
				t.Fatalf("field line %q in %q", line, raw)
			}
			for _, c := range value {
				if (c < ' ' && c != '\t') || c == 0x7f {
					t.Fatalf("control character in %q", line)
				}
			}
		}
		interim := bytes.HasPrefix(raw, []byte("HTTP/1.1 1")) && !bytes.HasPrefix(raw, []byte("HTTP/1.1 101"))
		if !interim {
			return
		}
		raw = raw[end+4:]
	}
}

// FuzzScanField holds the parsers' one-pass field line to the long way
// it stands in for: where scanField accepts a line, nextLine and
// parseField accept it too, with the same name (lower-cased in place the
// same way), value and next line; the empty line ends the head in both.
// Where it declines, the long way decides (nothing to compare).
func FuzzScanField(f *testing.F) {
	for _, s := range []string{
		"Host: a\r\n",
		"\r\n",
		"\r\nrest",
		"X-Long-Name: " + strings.Repeat("v", 40) + "  \r\nNext: 1\r\n",
		"Accept:*/*\r\n",
		"Empty:\r\n",
		"Empty:   \r\n",
		"Tab:\tv\r\n",
		"Tab: v\tw\r\n",
		"Bare: lf\n",
		"Bare: cr\rx\r\n",
		"Ctl: a\x01b\r\n",
		"Del: a\x7fb\r\n",
		"Obs: caf\xc3\xa9 \x80\xff\r\n",
		"No colon\r\n",
		" Fold: x\r\n",
		"Name : x\r\n",
		"Incomplete: value",
		"Incomplete: value\r",
		"UPPER-Case_Name!#$%&'*+-.^`|~: v\r\n",
		// Names of a word and more, lowered eight bytes a turn up to
		// their first byte that is no letter, digit or dash.
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789-abcdefghijklmnopqrstuvwxyz: v\r\n",
		"Abcdefgh_IJK: 1\r\n",
		"Abcdefg\x80IJK: 1\r\n",
		"ABCDEFGH:IJKLMNOP\r\n",
		"Content-Length: 5\r\n",
	} {
		f.Add([]byte(s), uint16(0), uint16(4096))
		f.Add([]byte("GET / HTTP/1.1\r\n"+s), uint16(16), uint16(30))
	}
	f.Fuzz(func(t *testing.T, data []byte, at, max uint16) {
		i := int(at)
		if i > len(data) {
			return
		}
		start, lim := i/2, int(max)
		fast := append([]byte(nil), data...)
		long := append([]byte(nil), data...)
		name, value, next, ok := scanField(fast, i, start, lim)
		if !ok {
			return
		}
		line, lnext, err := nextLine(long, i, start, lim)
		if err != nil {
			t.Fatalf("scanField accepted what nextLine refuses (%v): %q", err, data[i:])
		}
		if next != lnext {
			t.Fatalf("next line at %d, long way %d: %q", next, lnext, data[i:])
		}
		if len(line) == 0 {
			if name != nil {
				t.Fatalf("empty line read as field %q: %q", name, data[i:])
			}
			return
		}
		lname, lvalue, err := parseField(line)
		if err != nil {
			t.Fatalf("scanField accepted what parseField refuses (%v): %q", err, data[i:])
		}
		if !bytes.Equal(name, lname) || !bytes.Equal(value, lvalue) {
			t.Fatalf("field %q: %q, long way %q: %q", name, value, lname, lvalue)
		}
		if !bytes.Equal(fast[:next], long[:next]) {
			t.Fatalf("buffer %q, long way %q", fast[:next], long[:next])
		}
	})
}
