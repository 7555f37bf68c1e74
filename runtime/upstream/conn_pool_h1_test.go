package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// rawServer answers every request on every connection by calling respond
// with the parsed request and the connection; it counts connections.
type rawServer struct {
	addr  string
	conns atomic.Int32
}

func startRawServer(t *testing.T, respond func(r *http.Request, c net.Conn, br *bufio.Reader) bool) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRaw(t, l, respond)
}

// serveRaw is startRawServer on a listener of the caller's (TLS).
func serveRaw(t *testing.T, l net.Listener, respond func(r *http.Request, c net.Conn, br *bufio.Reader) bool) *rawServer {
	s := &rawServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if !respond(r, c, br) {
						return
					}
				}
			}()
		}
	}()
	return s
}

// canned answers with a fixed wire response after draining the request body.
func canned(resp string) func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
	return func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.Copy(io.Discard, r.Body)
		_, err := io.WriteString(c, resp)
		return err == nil && !strings.Contains(resp, "Connection: close") && !strings.HasPrefix(resp, "HTTP/1.0")
	}
}

func h1Cluster(t *testing.T, addr string, lim config.Limits) *Cluster {
	t.Helper()
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: []string{addr}, Limits: lim})
	return m.Cluster("c")
}

func do(t *testing.T, c *Cluster, method string, body io.Reader) (*http.Response, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, "http://x/p?q=1", body)
	resp, err := c.RoundTrip(req, Pick{})
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func TestH1ResponseFraming(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		wire      string
		body      string
		length    int64
		trailer   http.Header
		wantConns int32 // after two requests
	}{
		{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 5, nil, 1},
		{"chunked with trailers", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nGrpc-Status: 0\r\n\r\n", "abcde", -1, http.Header{"Grpc-Status": {"0"}}, 1},
		{"close delimited", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close", "until close", -1, nil, 2},
		{"http/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 2, nil, 2},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "", 10, nil, 1},
		{"no content", "GET", "HTTP/1.1 204 No Content\r\n\r\n", "", 0, nil, 1},
		{"not modified", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", "", 0, nil, 1},
		{"interim 100", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 2, nil, 1},
		{"both framings", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n2\r\nok\r\n0\r\n\r\n", "ok", -1, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRawServer(t, canned(tt.wire))
			c := h1Cluster(t, s.addr, config.Limits{})
			for i := 0; i < 2; i++ {
				resp, body, err := do(t, c, tt.method, nil)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if body != tt.body || resp.ContentLength != tt.length {
					t.Errorf("body %q length %d, want %q %d", body, resp.ContentLength, tt.body, tt.length)
				}
				for k, v := range tt.trailer {
					if got := resp.Trailer.Get(k); got != v[0] {
						t.Errorf("trailer %s = %q, want %q", k, got, v[0])
					}
				}
			}
			if got := s.conns.Load(); got != tt.wantConns {
				t.Errorf("%d connections for two requests, want %d", got, tt.wantConns)
			}
		})
	}
}

func TestH1MalformedResponses(t *testing.T) {
	tests := []struct {
		name, wire string
		want       Failure
	}{
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", Other},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", Other},
		{"truncated headers", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", Reset},
		{"huge headers", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
				io.WriteString(c, tt.wire)
				return false
			})
			_, _, err := do(t, h1Cluster(t, s.addr, config.Limits{}), "GET", nil)
			if err == nil {
				t.Fatal("malformed response accepted")
			}
			if f := Classify(err); f != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", err, f, tt.want)
			}
		})
	}
}

func TestH1TruncatedBody(t *testing.T) {
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
		return false
	})
	_, body, err := do(t, h1Cluster(t, s.addr, config.Limits{}), "GET", nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || body != "short" {
		t.Errorf("body %q err %v, want the partial body and unexpected EOF", body, err)
	}
}

// TestH1RequestBodies checks what the upstream receives for each body kind.
func TestH1RequestBodies(t *testing.T) {
	b := startHTTP(t, "echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("x-te", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("x-cl", r.Header.Get("Content-Length"))
		w.Header().Set("x-trailer", r.Trailer.Get("X-Checksum"))
		w.Header().Set("x-uri", r.RequestURI)
		w.Header().Set("x-host", r.Host)
		w.Write(body)
	}), false)
	c := h1Cluster(t, b.addr, config.Limits{})
	send := func(method string, body io.Reader, length int64, trailer http.Header) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://ignored/a%2Fb?x=1&y=2", body)
		req.Host = "svc.example"
		if length >= 0 {
			req.ContentLength = length
		}
		req.Trailer = trailer
		resp, err := c.RoundTrip(req, Pick{})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	read := func(resp *http.Response) string {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	resp := send("POST", strings.NewReader("sized"), 5, nil)
	if got := read(resp); got != "sized" || resp.Header.Get("x-cl") != "5" || resp.Header.Get("x-te") != "" {
		t.Errorf("sized body: %q cl=%q te=%q", got, resp.Header.Get("x-cl"), resp.Header.Get("x-te"))
	}
	if resp.Header.Get("x-uri") != "/a%2Fb?x=1&y=2" || resp.Header.Get("x-host") != "svc.example" {
		t.Errorf("request line: uri %q host %q", resp.Header.Get("x-uri"), resp.Header.Get("x-host"))
	}
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("stream"))
		pw.Write([]byte("ed"))
		pw.Close()
	}()
	resp = send("POST", pr, -1, http.Header{"X-Checksum": {"abc"}})
	if got := read(resp); got != "streamed" || resp.Header.Get("x-te") != "chunked" || resp.Header.Get("x-trailer") != "abc" {
		t.Errorf("chunked body: %q te=%q trailer=%q", got, resp.Header.Get("x-te"), resp.Header.Get("x-trailer"))
	}
	resp = send("POST", nil, 0, nil)
	if got := read(resp); got != "" || resp.Header.Get("x-cl") != "0" {
		t.Errorf("empty POST: %q cl=%q", got, resp.Header.Get("x-cl"))
	}
}

func TestH1RejectsHeaderInjection(t *testing.T) {
	s := startRawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	c := h1Cluster(t, s.addr, config.Limits{})
	for _, h := range []http.Header{
		{"X-Evil": {"a\r\nX-Injected: 1"}},
		{"Bad Name": {"v"}},
		{"X-Nul": {"a\x00b"}},
	} {
		req, _ := http.NewRequest("GET", "http://x/", nil)
		req.Header = h
		if _, err := c.RoundTrip(req, Pick{}); err == nil {
			t.Errorf("header %v sent", h)
		}
	}
}

// TestH1StaleConnection: the server closes each connection after
// answering without saying so, as one whose keep-alive timer fired does.
// The pool sees the close (its FIN) before it reuses the connection, so
// every request, a POST with a body too, goes out on a fresh connection.
func TestH1StaleConnection(t *testing.T) {
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.Copy(io.Discard, r.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	for i := 0; i < 3; i++ {
		if _, body, err := do(t, c, "GET", nil); err != nil || body != "ok" {
			t.Fatalf("GET %d on a stale connection: %q %v", i, body, err)
		}
		time.Sleep(20 * time.Millisecond) // let the close arrive
	}
	if _, body, err := do(t, c, "POST", strings.NewReader("payload")); err != nil || body != "ok" {
		t.Errorf("POST after a stale connection: %q %v", body, err)
	}
	if n := s.conns.Load(); n != 4 {
		t.Errorf("%d connections for 4 requests, want 4", n)
	}
}

// TestH1ClosedOnReuse: the server closes a kept-alive connection when the
// next request arrives on it, without answering (its idle timer fired as
// the request came). Safe requests are sent again on a fresh connection; a
// POST with a body is not replayed and fails as a reset.
func TestH1ClosedOnReuse(t *testing.T) {
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		if r.Header.Get("X-Second") != "" {
			return false
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	send := func(method string, body io.Reader, second bool) (string, error) {
		req, _ := http.NewRequest(method, "http://x/", body)
		if second {
			req.Header.Set("X-Second", "1")
		}
		resp, err := c.RoundTrip(req, Pick{})
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b), err
	}
	if _, err := send("GET", nil, false); err != nil {
		t.Fatal(err)
	}
	// The replay is refused too (X-Second again): a GET is tried twice.
	if _, err := send("GET", nil, true); Classify(err) != Reset {
		t.Errorf("GET refused twice: %v, want reset", err)
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("GET was tried on %d connections, want 2 (one replay)", n)
	}
	if _, err := send("GET", nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := send("POST", strings.NewReader("payload"), true); Classify(err) != Reset {
		t.Errorf("POST on a connection closed on reuse: %v (%v), want reset", err, Classify(err))
	}
	if n := s.conns.Load(); n != 3 {
		t.Errorf("POST was replayed: %d connections, want 3", n)
	}
}

func TestH1CancelDuringBody(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
		<-release
		return false
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://x/", nil)
	resp, err := c.RoundTrip(req, Pick{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	io.ReadFull(resp.Body, buf)
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v", d)
	}
	eventually(t, 2*time.Second, "connection closed", func() bool { return c.limiter.active.Load() == 0 })
}

func TestH1EarlyResponseToLargeBody(t *testing.T) {
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")
		return false
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	big := bytes.NewReader(make([]byte, 32<<20))
	resp, body, err := do(t, c, "POST", big)
	if err != nil {
		t.Fatalf("early answer lost: %v", err)
	}
	if resp.StatusCode != 413 || body != "big" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

func TestH1EarlyCloseDoesNotReuse(t *testing.T) {
	s := startRawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"))
	c := h1Cluster(t, s.addr, config.Limits{})
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", "http://x/", nil)
		resp, err := c.RoundTrip(req, Pick{})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		io.ReadFull(resp.Body, buf)
		resp.Body.Close()
		if _, err := resp.Body.Read(buf); err == nil {
			t.Error("read after Close succeeded")
		}
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("half-read connection reused: %d connections", n)
	}
}

func TestH1Upgrade(t *testing.T) {
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		if r.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return false
		}
		// Bytes of the new protocol may come with the 101.
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
		io.Copy(c, br) // echo
		return false
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	for _, api := range []string{"RoundTrip", "Send"} {
		var rw io.ReadWriteCloser
		if api == "Send" {
			resp, err := send(t, c, &Request{Headers: headers("GET", "/ws", "x", "connection", "Upgrade", "upgrade", "websocket")})
			if err != nil || resp.Status() != 101 {
				t.Fatalf("%s: %d %v", api, resp.Status(), err)
			}
			if rw, err = resp.Upgrade(); err != nil {
				t.Fatal(err)
			}
		} else {
			req, _ := http.NewRequest("GET", "http://x/ws", nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			resp, err := c.RoundTrip(req, Pick{})
			if err != nil || resp.StatusCode != 101 {
				t.Fatalf("%s: %v %v", api, resp, err)
			}
			var ok bool
			if rw, ok = resp.Body.(io.ReadWriteCloser); !ok {
				t.Fatalf("101 body %T is not writable", resp.Body)
			}
		}
		if _, err := rw.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 9)
		if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "helloping" {
			t.Errorf("%s: read %q %v, want the early bytes then the echo", api, buf, err)
		}
		if c.Status().ActiveRequests != 1 {
			t.Errorf("%s: an open upgraded stream should count as active", api)
		}
		rw.Close()
		if c.Status().ActiveRequests != 0 {
			t.Errorf("%s: upgraded stream still active after Close", api)
		}
	}
}

// TestH1CloseDuringRead closes the body from another goroutine while a
// Read is blocked, as a proxy aborting a stream does.
func TestH1CloseDuringRead(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n")
		<-release
		return false
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	req, _ := http.NewRequest("GET", "http://x/", nil)
	resp, err := c.RoundTrip(req, Pick{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	resp.Body.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("blocked read ended without error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if c.Status().ActiveRequests != 0 {
		t.Error("request still active after Close")
	}
}

func TestH1RequestLine(t *testing.T) {
	var got atomic.Value
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		got.Store(r.Method + " " + r.RequestURI + " " + r.Host)
		io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		return true
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	tests := []struct {
		method, url, want string
	}{
		{"GET", "http://h/", "GET / h"},
		{"GET", "http://h", "GET / h"},
		{"GET", "http://h/a%2Fb?x=1&y=%20", "GET /a%2Fb?x=1&y=%20 h"},
		{"DELETE", "http://h//double/slash", "DELETE //double/slash h"},
		{"OPTIONS", "http://h/sp%20ace", "OPTIONS /sp%20ace h"},
		{"PURGE", "http://h:8080/x", "PURGE /x h:8080"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, tt.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.RoundTrip(req, Pick{})
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.url, err)
		}
		resp.Body.Close()
		if g := got.Load(); g != tt.want {
			t.Errorf("%s %s: upstream saw %q, want %q", tt.method, tt.url, g, tt.want)
		}
	}
}

// writeCountingConn is a dialer's wrapper that does something with what
// is written (here, counting it) while it still exposes the socket's
// descriptor through the embedded *net.TCPConn.
type writeCountingConn struct {
	*net.TCPConn
	written *atomic.Int64
}

func (c *writeCountingConn) Write(p []byte) (int, error) {
	c.written.Add(int64(len(p)))
	return c.TCPConn.Write(p)
}

// TestH1WritesGoThroughWrappers: a request on a reused connection is
// written through the connection the dialer returned, never straight to
// the socket beneath a wrapper the pool does not know (the idle check
// and its write in one poller step is only for the standard library's
// sockets).
func TestH1WritesGoThroughWrappers(t *testing.T) {
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	var written atomic.Int64
	p := newH1Pool(func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &writeCountingConn{TCPConn: c.(*net.TCPConn), written: &written}, nil
	}, time.Minute, 4, 0)
	defer p.closeAll()
	for i := 0; i < 3; i++ {
		before := written.Load()
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/", nil)
		resp, err := p.RoundTrip(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if written.Load() == before {
			t.Fatalf("request %d went out without the dialer's wrapper seeing it", i)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (reused)", n)
	}
}
