package http1

import (
	"bytes"
	"io"
	"testing"
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
