package upstream

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// memConn is an upstream connection that answers with the fuzzer's bytes.
type memConn struct {
	r *bytes.Reader
}

func (m *memConn) Read(p []byte) (int, error)       { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzH1Response feeds arbitrary upstream bytes to the HTTP/1.1 client as
// the answer to a GET, a HEAD or an upgrade request. It must never panic
// or hang, never surface an interim response or an unsolicited 101, and a
// connection it keeps for reuse must have been read exactly to the end of
// a well-framed response: the next request's answer must be the next
// bytes the upstream sends, never left-overs of this one. Go's own
// response parser is the oracle for what such a response contains.
func FuzzH1Response(f *testing.F) {
	for _, s := range []struct {
		mode byte
		wire string
	}{
		{0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
		{0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + smuggled},
		{0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nGrpc-Status: 0\r\n\r\n"},
		{0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n" + smuggled},
		{0, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
		{0, "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"},
		{0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nok\r\n0\r\n\r\n"},
		{0, "HTTP/1.1 204 No Content\r\n\r\n" + smuggled},
		{0, "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"},
		{1, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n" + smuggled},
		{0, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{0, strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 20)},
		{0, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\n" + smuggled},
		{2, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes"},
		{0, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"},
		{0, "HTTP/1.0 200 OK\r\n\r\nuntil close"},
		{0, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"},
		{0, "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
		{0, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
		{0, "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"},
		{0, "HTTP/1.1 2000 OK\r\n\r\n"},
		{0, "SSH-2.0-OpenSSH\r\n\r\n"},
	} {
		f.Add(s.mode, []byte(s.wire))
	}
	f.Fuzz(func(t *testing.T, mode byte, wire []byte) {
		method := http.MethodGet
		if mode&1 != 0 {
			method = http.MethodHead
		}
		upgrade := mode&2 != 0
		mc := &memConn{r: bytes.NewReader(wire)}
		p := &h1Pool{idleTimeout: time.Hour, maxIdle: 1, idle: map[string]*idleConns{},
			dial: func(context.Context, string, string) (net.Conn, error) { return mc, nil }}
		h := headers(method, "/", "up")
		if upgrade {
			h.Add("connection", "Upgrade")
			h.Add("upgrade", "websocket")
		}
		st, err := p.send(context.Background(), &Request{Headers: h}, "up", 0)
		pooled := func() bool { return p.idle["up"] != nil && len(p.idle["up"].conns) > 0 }
		if err != nil {
			if pooled() {
				t.Fatalf("connection kept after %v", err)
			}
			return
		}
		resp := st.handle()
		code := resp.Status()
		if code < 100 || code > 999 || code < 200 && code != http.StatusSwitchingProtocols {
			t.Fatalf("status %d surfaced", code)
		}
		if code == http.StatusSwitchingProtocols {
			if !upgrade {
				t.Fatal("unsolicited 101 surfaced")
			}
			resp.Close()
			if pooled() {
				t.Fatal("upgraded connection kept")
			}
			return
		}
		length := resp.BodyLength()
		body, readErr := io.ReadAll(resp.Body())
		resp.Close()
		if readErr == nil && length >= 0 && method != http.MethodHead && int64(len(body)) != length {
			t.Fatalf("body of %d bytes, Content-Length %d", len(body), length)
		}
		if !pooled() {
			return
		}
		if readErr != nil {
			t.Fatalf("connection kept after a body error %v", readErr)
		}
		if c := p.idle["up"].conns[0]; len(c.cc.Buffered()) != 0 {
			t.Fatalf("connection kept with %d unread bytes", len(c.cc.Buffered()))
		}
		// The oracle: the bytes consumed are exactly one response as Go
		// reads it (interim ones aside), with the same status and body.
		// Responses with bare LF line ends are left out: RFC 9112 section
		// 2.2 lets a recipient accept them, and Go accepts them in heads
		// but not around trailers.
		consumed := wire[:len(wire)-mc.r.Len()]
		if bytes.Count(consumed, []byte("\n")) != bytes.Count(consumed, []byte("\r\n")) {
			return
		}
		br := bufio.NewReader(bytes.NewReader(consumed))
		req, _ := http.NewRequest(method, "http://up/", nil)
		var want *http.Response
		for {
			want, err = http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("kept a connection after a response Go refuses: %v", err)
			}
			if want.StatusCode >= 200 || want.StatusCode == http.StatusSwitchingProtocols {
				break
			}
		}
		if want.Close {
			t.Fatal("connection kept though the response said close")
		}
		wantBody, err := io.ReadAll(want.Body)
		if err != nil {
			t.Fatalf("kept a connection after a body Go refuses: %v", err)
		}
		if want.StatusCode != code || !bytes.Equal(wantBody, body) {
			t.Fatalf("got %d %q, Go reads %d %q", code, body, want.StatusCode, wantBody)
		}
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			t.Fatalf("kept a connection with %q past the response's end", rest)
		}
	})
}
