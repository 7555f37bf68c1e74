package http1

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
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
		for name := range req.Header.All() {
			if !bytes.Equal(name, bytes.ToLower(name)) {
				t.Fatalf("name %q not lower-case", name)
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

// FuzzServeConn runs the whole connection loop (parse, adapter, handler,
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
		s := &Server{Handler: h, Limits: Limits{MaxHeaderBytes: 4096, MaxHeaders: 50}}
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
