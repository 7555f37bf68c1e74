package http1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// clientOver is a ClientConn reading wire.
func clientOver(wire string) (*ClientConn, *upConn) {
	fc := &upConn{r: strings.NewReader(wire)}
	c := new(ClientConn)
	c.Init(fc, Limits{})
	return c, fc
}

func TestReadResponseFraming(t *testing.T) {
	tests := []struct {
		name, wire string
		head       bool
		status     int
		length     int64
		chunked    bool
		keepAlive  bool
		body       string
		err        string // substring; "" for none
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, 5, false, true, "hello", ""},
		{"no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, 200, 0, false, true, "", ""},
		{"repeated equal lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false, 200, 2, false, true, "ok", ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, 200, -1, true, true, "ok", ""},
		{"both framings", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, 200, -1, true, false, "ok", ""},
		{"chunked on 1.0", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, 200, -1, true, false, "ok", ""},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nto the end", false, 200, -1, false, false, "to the end", ""},
		{"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false, 200, 2, false, true, "ok", ""},
		{"1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, 2, false, false, "ok", ""},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, 200, 2, false, false, "ok", ""},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, 200, 10, false, true, "", ""},
		{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, 304, 0, false, true, "", ""},
		{"204 declaring a body", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", false, 204, 0, false, false, "", ""},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, 2, false, true, "ok", ""},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframes", false, 101, 0, false, false, "", ""},
		{"too many interim", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", MaxInterimResponses+1) + "HTTP/1.1 200 OK\r\n\r\n", false, 0, 0, false, false, "", "interim"},
		{"differing lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false, 0, 0, false, false, "", "differing"},
		{"length list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", false, 0, 0, false, false, "", "Content-Length"},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false, 0, 0, false, false, "", "Content-Length"},
		{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, 0, 0, false, false, "", "Transfer-Encoding"},
		{"two transfer-encodings", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", false, 0, 0, false, false, "", "Transfer-Encoding"},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n", false, 200, -1, true, true, "", "chunk size"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, 0, 0, false, false, "", "CRLF"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", false, 0, 0, false, false, "", "folding"},
		{"bad status", "HTTP/1.1 2000 OK\r\n\r\n", false, 0, 0, false, false, "", "status"},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", false, 0, 0, false, false, "", "status line"},
		{"truncated head", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", false, 0, 0, false, false, "", "unexpected EOF"},
		{"nothing", "", false, 0, 0, false, false, "", "before any response byte"},
		{"mid-body close", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", false, 200, 5, false, true, "hel", "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := clientOver(tt.wire)
			defer c.Release()
			resp, err := c.ReadResponse(tt.head)
			if err == nil {
				if resp.Status != tt.status || resp.ContentLength != tt.length || resp.Chunked != tt.chunked || resp.KeepAlive != tt.keepAlive {
					t.Fatalf("status %d length %d chunked %v keep-alive %v, want %d %d %v %v",
						resp.Status, resp.ContentLength, resp.Chunked, resp.KeepAlive, tt.status, tt.length, tt.chunked, tt.keepAlive)
				}
				if v, _ := resp.Header.Get(stream.Status); string(v) != itoa(tt.status) {
					t.Errorf(":status %q", v)
				}
				if resp.Header.Has("transfer-encoding") || tt.chunked && resp.Header.Has("content-length") {
					t.Error("framing fields left in the map")
				}
				var body []byte
				body, err = io.ReadAll(readerFunc(c.ReadBody))
				if string(body) != tt.body {
					t.Errorf("body %q, want %q", body, tt.body)
				}
			}
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one saying %q", err, tt.err)
			}
		})
	}
}

// TestClientConnTrailersAndReuse: trailers come after the body, framing
// fields among them are dropped, and a response followed by more bytes
// leaves the connection unusable.
func TestClientConnTrailersAndReuse(t *testing.T) {
	c, _ := clientOver("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nGrpc-Status: 0\r\nContent-Length: 5\r\n\r\n")
	defer c.Release()
	if _, err := c.ReadResponse(false); err != nil {
		t.Fatal(err)
	}
	if c.Trailers() != nil {
		t.Error("trailers before the body's end")
	}
	if body, err := io.ReadAll(readerFunc(c.ReadBody)); err != nil || string(body) != "ok" {
		t.Fatal(string(body), err)
	}
	tr := c.Trailers()
	if tr == nil || tr.Len() != 1 {
		t.Fatalf("trailers %v", tr)
	}
	if v, _ := tr.Get("grpc-status"); string(v) != "0" {
		t.Errorf("grpc-status %q", v)
	}
	if !c.Reusable(nil) {
		t.Error("a clean chunked response should leave the connection reusable")
	}

	c2, _ := clientOver("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n")
	defer c2.Release()
	c2.ReadResponse(false)
	io.ReadAll(readerFunc(c2.ReadBody))
	if c2.Reusable(nil) {
		t.Error("a connection with bytes past the response is reusable")
	}
}

func TestAppendRequestHead(t *testing.T) {
	h := new(stream.HeaderMap)
	h.Add(stream.Method, "POST")
	h.Add(stream.Path, "/a%2Fb?x=1")
	h.Add(stream.Authority, "svc.example:8080")
	h.Add("x-a", "1")
	h.Add("content-length", "999")       // the codec frames
	h.Add("transfer-encoding", "gzip")   // likewise
	h.Add("connection", "keep-alive, x") // hop-by-hop: the codec's
	h.Add("host", "other")               // :authority wins
	h.Add("trailer", "x-sum")            // only on a chunked body
	h.Add("x-a", "2")
	got, upgrade, err := AppendRequestHead(nil, h, RequestFraming{BodyLength: 5})
	want := "POST /a%2Fb?x=1 HTTP/1.1\r\nHost: svc.example:8080\r\nx-a: 1\r\nx-a: 2\r\nContent-Length: 5\r\n\r\n"
	if err != nil || upgrade || string(got) != want {
		t.Fatalf("got %q %v %v\nwant %q", got, upgrade, err, want)
	}
	got, _, _ = AppendRequestHead(nil, h, RequestFraming{BodyLength: -1, Close: true})
	if !bytes.Contains(got, []byte("trailer: x-sum\r\n")) || !bytes.Contains(got, []byte("Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n")) {
		t.Errorf("chunked head %q", got)
	}

	up := new(stream.HeaderMap)
	up.Add(stream.Method, "GET")
	up.Add(stream.Path, "/ws")
	up.Add(stream.Authority, "x")
	up.Add("connection", "Upgrade")
	up.Add("upgrade", "websocket")
	got, upgrade, err = AppendRequestHead(nil, up, RequestFraming{Close: true})
	if err != nil || !upgrade || string(got) != "GET /ws HTTP/1.1\r\nHost: x\r\nupgrade: websocket\r\nConnection: upgrade\r\n\r\n" {
		t.Errorf("upgrade head %q %v %v", got, upgrade, err)
	}

	for _, tt := range []struct{ name, method, path, authority, field, value string }{
		{"CRLF in a value", "GET", "/", "x", "x-evil", "a\r\nx-injected: 1"},
		{"NUL in a value", "GET", "/", "x", "x-nul", "a\x00b"},
		{"space in a name", "GET", "/", "x", "bad name", "v"},
		{"space in the path", "GET", "/a b", "x", "", ""},
		{"CRLF in the authority", "GET", "/", "x\r\nx-injected: 1", "", ""},
		{"no method", "", "/", "x", "", ""},
		{"no path", "GET", "", "x", "", ""},
		{"bad method", "G(T", "/", "x", "", ""},
	} {
		h := new(stream.HeaderMap)
		if tt.method != "" {
			h.Add(stream.Method, tt.method)
		}
		if tt.path != "" {
			h.Add(stream.Path, tt.path)
		}
		h.Add(stream.Authority, tt.authority)
		if tt.field != "" {
			h.AddRaw([]byte(tt.field), []byte(tt.value))
		}
		var he *HeadError
		if _, _, err := AppendRequestHead(nil, h, RequestFraming{}); !errors.As(err, &he) {
			t.Errorf("%s: %v, want a HeadError", tt.name, err)
		}
	}
}

// TestAppendRequestHeadOwnFields: the fields the codec writes itself are
// dropped whatever their case in the map, and names that share a first
// byte and a length with one of them (AppendRequestHead's pre-filter) are
// written as any other; the errors name the first thing wrong.
func TestAppendRequestHeadOwnFields(t *testing.T) {
	h := new(stream.HeaderMap)
	h.Add(stream.Method, "GET")
	h.Add(stream.Path, "/")
	h.Add(stream.Authority, "a")
	for _, name := range []string{"host", "content-length", "transfer-encoding", "keep-alive", "proxy-connection", "trailer", "connection"} {
		h.AddRaw([]byte(name), []byte("x"))
	}
	kept := []string{"hxst", "content-lengtx", "transfer-encodinx", "keep-alivx", "proxy-connectiox", "trailex", "connectiox", "upgradx", "tx", "user-agent", "x-forwarded-proto"}
	for _, name := range kept {
		h.AddRaw([]byte(name), []byte("v"))
	}
	got, upgrade, err := AppendRequestHead([]byte("prefix|"), h, RequestFraming{})
	want := "prefix|GET / HTTP/1.1\r\nHost: a\r\n"
	for _, name := range kept {
		want += name + ": v\r\n"
	}
	want += "\r\n"
	if err != nil || upgrade || string(got) != want {
		t.Fatalf("got %q %v %v\nwant %q", got, upgrade, err, want)
	}

	for _, tt := range []struct{ method, path, authority, reason string }{
		{"", "/a b", "x y", "request without :method"},
		{"G(T", "", "x y", "invalid method"},
		{"GET", "", "x y", "request without :path"},
		{"GET", "/a b", "x y", "invalid request target"},
		{"GET", "/", "x y", "invalid authority"},
		{"CONNECT", "", "x y", "invalid request target"},
		{"CONNECT", "", "", "request without :path"},
	} {
		h := new(stream.HeaderMap)
		h.Add(stream.Method, tt.method)
		h.Add(stream.Path, tt.path)
		h.Add(stream.Authority, tt.authority)
		out, _, err := AppendRequestHead([]byte("p"), h, RequestFraming{})
		var he *HeadError
		if !errors.As(err, &he) || he.Reason != tt.reason || string(out) != "p" {
			t.Errorf("%q %q %q: %q %v, want %q", tt.method, tt.path, tt.authority, out, err, tt.reason)
		}
	}
	h = new(stream.HeaderMap)
	h.Add(stream.Method, "CONNECT")
	h.Add(stream.Authority, "a:443")
	if got, _, err := AppendRequestHead(nil, h, RequestFraming{}); err != nil || string(got) != "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" {
		t.Errorf("CONNECT: %q %v", got, err)
	}
}

// TestClientConnWritesWholeRequest: a whole body goes out with its head in
// one write, chunked with trailers when asked.
func TestClientConnWritesWholeRequest(t *testing.T) {
	var out bytes.Buffer
	fc := &upConn{r: strings.NewReader(""), out: &out}
	c := new(ClientConn)
	c.Init(fc, Limits{})
	defer c.Release()
	h := new(stream.HeaderMap)
	h.Add(stream.Method, "POST")
	h.Add(stream.Path, "/")
	h.Add(stream.Authority, "x")
	tr := new(stream.HeaderMap)
	tr.Add("x-sum", "1")
	tr.Add("content-length", "3") // not allowed in a trailer
	if _, err := c.WriteRequest(h, RequestFraming{BodyLength: -1}, []byte("abc"), tr); err != nil {
		t.Fatal(err)
	}
	want := "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 1\r\n\r\n"
	if out.String() != want || fc.writes != 1 {
		t.Errorf("%d writes of %q, want one of %q", fc.writes, out.String(), want)
	}
}

// TestEncodeRequestBodies holds EncodeRequest's skip of an empty body
// with a zero length (the proxy's GET) to what the whole-body path
// writes for the bodies and framings around it.
func TestEncodeRequestBodies(t *testing.T) {
	h := new(stream.HeaderMap)
	h.Add(stream.Method, "GET")
	h.Add(stream.Path, "/")
	h.Add(stream.Authority, "x")
	tr := new(stream.HeaderMap)
	tr.Add("x-sum", "1")
	for _, body := range [][]byte{nil, {}, []byte("abc")} {
		for _, n := range []int64{-1, 0, 3, 5} {
			for _, tt := range []*stream.HeaderMap{nil, tr} {
				f := RequestFraming{BodyLength: n}
				c := new(ClientConn)
				got, _, err := c.EncodeRequest(h, f, body, tt)
				head, _, herr := AppendRequestHead(nil, h, f)
				if herr != nil {
					t.Fatal(herr)
				}
				var want []byte
				var werr error
				if body != nil {
					want, werr = appendWholeBody(head, f, body, tt)
				} else {
					want = head
				}
				if (err != nil) != (werr != nil) || err == nil && string(got) != string(want) {
					t.Errorf("body %q, framing %+v, trailers %v: %q, %v; want %q, %v", body, f, tt != nil, got, err, want, werr)
				}
			}
		}
	}
}

// FuzzReadResponse reads arbitrary bytes as a response, as an upstream
// connection would: nothing may panic, an accepted response satisfies the
// framing invariants, and a connection left reusable was read exactly to
// the response's end.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\n\r\n3\r\nabc\r\n0\r\nX: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, wire []byte, head bool) {
		fc := &upConn{r: bytes.NewReader(wire)}
		c := new(ClientConn)
		c.Init(fc, Limits{MaxHeaderBytes: 4096, MaxHeaders: 50})
		defer c.Release()
		resp, err := c.ReadResponse(head)
		if err != nil {
			return
		}
		if resp.Status < 200 && resp.Status != 101 || resp.Status > 999 {
			t.Fatalf("status %d surfaced", resp.Status)
		}
		if resp.Chunked && resp.ContentLength != -1 {
			t.Fatalf("chunked with length %d", resp.ContentLength)
		}
		body, err := io.ReadAll(io.LimitReader(readerFunc(c.ReadBody), 1<<20))
		if err == nil && resp.ContentLength > 0 && !head && int64(len(body)) != resp.ContentLength && resp.Status != 304 && resp.Status != 204 {
			t.Fatalf("body of %d bytes, length %d", len(body), resp.ContentLength)
		}
		if c.Reusable(nil) {
			if err != nil || !resp.KeepAlive {
				t.Fatalf("reusable after %v (keep-alive %v)", err, resp.KeepAlive)
			}
		}
	})
}

// upConn is an upstream connection that answers with r and records what
// is written to it, and in how many writes.
type upConn struct {
	r      io.Reader
	out    *bytes.Buffer
	writes int
}

func (c *upConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *upConn) Write(p []byte) (int, error) {
	c.writes++
	if c.out != nil {
		c.out.Write(p)
	}
	return len(p), nil
}
func (c *upConn) Close() error                       { return nil }
func (c *upConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *upConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *upConn) SetDeadline(t time.Time) error      { return nil }
func (c *upConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *upConn) SetWriteDeadline(t time.Time) error { return nil }
