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

	"github.com/sluice-proxy/sluice/runtime/clock"
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
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

// reply is what do saw of a response before it closed it.
type reply struct {
	status   int
	length   int64
	trailers *stream.HeaderMap
}

// do sends method /p?q=1 through c, with body streamed when not nil (its
// length known for a *bytes.Reader or *strings.Reader), and reads the
// whole answer.
func do(t *testing.T, c *Cluster, method string, body io.Reader) (reply, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := &Request{Headers: headers(method, "/p?q=1", "x")}
	if body != nil {
		req.BodyStream, req.BodyLength = body, -1
		if l, ok := body.(interface{ Len() int }); ok {
			req.BodyLength = int64(l.Len())
		}
	}
	resp, err := c.Send(ctx, req, Pick{})
	if err != nil {
		return reply{}, "", err
	}
	defer resp.Close()
	r := reply{status: resp.Status(), length: resp.BodyLength()}
	b, err := readAllKeep(resp)
	if tr := resp.Trailers(); tr != nil {
		r.trailers = tr.Clone()
	}
	return r, b, err
}

func TestH1ResponseFraming(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		wire      string
		body      string
		length    int64
		trailer   []string // name, value
		wantConns int32    // after two requests
	}{
		{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 5, nil, 1},
		{"chunked with trailers", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nGrpc-Status: 0\r\n\r\n", "abcde", -1, []string{"grpc-status", "0"}, 1},
		{"close delimited", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close", "until close", -1, nil, 2},
		{"http/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 2, nil, 2},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "", 0, nil, 1},
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
				if body != tt.body || resp.length != tt.length {
					t.Errorf("body %q length %d, want %q %d", body, resp.length, tt.body, tt.length)
				}
				if tt.trailer != nil && (resp.trailers == nil || field(resp.trailers, tt.trailer[0]) != tt.trailer[1]) {
					t.Errorf("trailers %v, want %s: %s", resp.trailers, tt.trailer[0], tt.trailer[1])
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

func TestH1RejectsHeaderInjection(t *testing.T) {
	s := startRawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	c := h1Cluster(t, s.addr, config.Limits{})
	for _, h := range [][]string{
		{"x-evil", "a\r\nX-Injected: 1"},
		{"bad name", "v"},
		{"x-nul", "a\x00b"},
	} {
		if resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x", h...)}); err == nil {
			resp.Close()
			t.Errorf("header %q sent", h)
		}
	}
}

// TestH1StaleConnection: the server closes each connection after
// answering without saying so, as one whose keep-alive timer fired does.
// The pool sees the close (its FIN) before it reuses the connection, so
// every request, a POST with a body too, goes out on a fresh connection.
func TestH1StaleConnection(t *testing.T) {
	closed := make(chan struct{}, 4)
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.Copy(io.Discard, r.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close() // on loopback its FIN has reached the pool's socket when Close returns
		closed <- struct{}{}
		return false
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	for i := 0; i < 3; i++ {
		if _, body, err := do(t, c, "GET", nil); err != nil || body != "ok" {
			t.Fatalf("GET %d on a stale connection: %q %v", i, body, err)
		}
		<-closed
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
		req := &Request{Headers: headers(method, "/", "x")}
		if second {
			req.Headers.Add("x-second", "1")
		}
		if body != nil {
			req.BodyStream = body
		}
		resp, err := send(t, c, req)
		if err != nil {
			return "", err
		}
		return readAll(t, resp)
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
	resp, err := c.Send(ctx, &Request{Headers: headers("GET", "/", "x")}, Pick{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	io.ReadFull(resp.Body(), buf)
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(resp.Body())
	resp.Close()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v", d)
	}
	eventually(t, 2*time.Second, "connection closed", func() bool { return c.limiter.active.Load() == 0 })
}

// TestH1WatchStartedForAnEarlierExchange: the connection's watch timer is
// not reset per exchange, so a quick exchange leaves it running; an
// exchange on the same connection whose upstream then never answers must
// still end when its context is cancelled (the timer, finding a later
// exchange than its own, starts again for it). Each round also cancels
// at a different point of the earlier timer's run.
func TestH1WatchStartedForAnEarlierExchange(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		if r.URL.Path == "/hang" {
			<-release
			return false
		}
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return err == nil
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	for i, after := range []time.Duration{0, 3 * time.Millisecond, 9 * time.Millisecond, 15 * time.Millisecond} {
		if r, body, err := do(t, c, "GET", nil); err != nil || r.status != 200 || body != "ok" {
			t.Fatalf("round %d: quick exchange: %v %d %q", i, err, r.status, body)
		}
		// The quick exchange started the timer; this one begins while it
		// runs (the round's wait, then the cancel, land at different
		// points of it).
		time.Sleep(after)
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(2*watchDelay+10*time.Millisecond, cancel)
		done := sendHang(ctx, c)
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: hanging exchange ended with %v, want the cancel", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the cancel did not end the exchange", i)
		}
		timer.Stop()
		cancel()
	}
	if n := s.conns.Load(); n != 4 {
		t.Errorf("%d connections, want 4 (each hung exchange reuses its round's connection)", n)
	}
}

// sendHang sends GET /hang with ctx on a goroutine of its own and gives
// the exchange's error (nil with a response, which it closes).
func sendHang(ctx context.Context, c *Cluster) <-chan error {
	done := make(chan error, 1)
	go func() {
		resp, err := c.Send(ctx, &Request{Headers: headers("GET", "/hang", "x")}, Pick{})
		if err == nil {
			resp.Close()
		}
		done <- err
	}()
	return done
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
	if resp.status != 413 || body != "big" {
		t.Errorf("got %d %q", resp.status, body)
	}
}

func TestH1EarlyCloseDoesNotReuse(t *testing.T) {
	s := startRawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"))
	c := h1Cluster(t, s.addr, config.Limits{})
	for i := 0; i < 2; i++ {
		resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		io.ReadFull(resp.Body(), buf)
		resp.Close()
		if _, err := resp.ReadBody(buf); err == nil {
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
	for range 2 {
		resp, err := send(t, c, &Request{Headers: headers("GET", "/ws", "x", "connection", "Upgrade", "upgrade", "websocket")})
		if err != nil || resp.Status() != 101 {
			t.Fatalf("%d %v", resp.Status(), err)
		}
		rw, err := resp.Upgrade()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rw.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 9)
		if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "helloping" {
			t.Errorf("read %q %v, want the early bytes then the echo", buf, err)
		}
		if c.Status().ActiveRequests != 1 {
			t.Error("an open upgraded stream should count as active")
		}
		rw.Close()
		if c.Status().ActiveRequests != 0 {
			t.Error("upgraded stream still active after Close")
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
	resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body())
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	resp.Close()
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
		method, path, authority, want string
	}{
		{"GET", "/", "h", "GET / h"},
		{"GET", "/a%2Fb?x=1&y=%20", "h", "GET /a%2Fb?x=1&y=%20 h"},
		{"DELETE", "//double/slash", "h", "DELETE //double/slash h"},
		{"OPTIONS", "/sp%20ace", "h", "OPTIONS /sp%20ace h"},
		{"PURGE", "/x", "h:8080", "PURGE /x h:8080"},
	}
	for _, tt := range tests {
		resp, err := send(t, c, &Request{Headers: headers(tt.method, tt.path, tt.authority)})
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		resp.Close()
		if g := got.Load(); g != tt.want {
			t.Errorf("%s %s: upstream saw %q, want %q", tt.method, tt.path, g, tt.want)
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
		st, err := p.send(context.Background(), &Request{Headers: headers("GET", "/", "x")}, s.addr, 0)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp := st.handle()
		io.Copy(io.Discard, resp.Body())
		resp.Close()
		if written.Load() == before {
			t.Fatalf("request %d went out without the dialer's wrapper seeing it", i)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (reused)", n)
	}
}

// cancellableCtx is a context as the proxy's stream contexts are: it ends
// only through its stream.Cancellable.
type cancellableCtx struct{ stream.Cancellable }

func (*cancellableCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*cancellableCtx) Value(any) any               { return nil }

// TestH1StreamContextWatchedWithoutTimer: an exchange whose context is a
// stream.Cancellable registers on it for the exchange's length (Watch)
// instead of starting the connection's watch timer, which on a busy
// connection fired every watchDelay, a goroutine each time. Quick
// exchanges leave no registration behind (the proxy reuses a quiet
// context for the connection's next stream), and a cancel mid-exchange
// still ends it, without waiting for any delay.
func TestH1StreamContextWatchedWithoutTimer(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hung := make(chan struct{}, 1)
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		if r.URL.Path == "/hang" {
			hung <- struct{}{}
			<-release
			return false
		}
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return err == nil
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	for i := range 20 {
		ctx := new(cancellableCtx)
		resp, err := c.Send(ctx, &Request{Headers: headers("GET", "/", "x")}, Pick{})
		if err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if body, err := readAll(t, resp); err != nil || body != "ok" {
			t.Fatalf("exchange %d: %q %v", i, body, err)
		}
		if !ctx.Quiet() {
			t.Fatalf("exchange %d left a registration on its context", i)
		}
	}
	p := c.spool.(*h1Pool)
	p.mu.Lock()
	var conn *h1Conn
	for _, l := range p.idle {
		if n := len(l.conns); n > 0 {
			conn = l.conns[n-1]
		}
	}
	p.mu.Unlock()
	if conn == nil {
		t.Fatal("no idle connection after the exchanges")
	}

	ctx := new(cancellableCtx)
	done := sendHang(ctx, c)
	select {
	case <-hung:
	case <-time.After(5 * time.Second):
		t.Fatal("the hanging request did not reach the upstream")
	}
	ctx.Cancel(context.Canceled)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("hanging exchange ended with %v, want the cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the cancel did not end the exchange")
	}
	if n := conn.watch.timer.Starts(); n != 0 {
		t.Errorf("the connection's watch timer started %d times, want 0", n)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (the hung exchange on the quick ones' connection)", n)
	}
}

// TestH1IdleAgeFromTheLastRead: a pooled connection's idle age counts
// from the last read of its response. A body that came with the head
// shares the head's reading (BodyWithHead); one that came after a pause
// is read again, so a connection whose response took longer than the
// idle timeout is still reused at once after it. The head's reading is
// what the router's upstream timing uses (HeadAt).
func TestH1IdleAgeFromTheLastRead(t *testing.T) {
	// The idle timeout must outlast a busy machine's pause between two
	// requests; the late body, the idle timeout.
	const idle, late = 600 * time.Millisecond, 800 * time.Millisecond
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		if r.URL.Path == "/late" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
			time.Sleep(late)
			io.WriteString(c, "ok")
			return true
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	p := newH1Pool((&net.Dialer{}).DialContext, idle, 4, 0)
	defer p.closeAll()
	get := func(path string, withHead bool) {
		t.Helper()
		before := time.Now()
		st, err := p.send(context.Background(), &Request{Headers: headers("GET", path, "x")}, s.addr, 0)
		if err != nil {
			t.Fatal(err)
		}
		resp := st.handle()
		if at := resp.HeadAt(); at < clock.MonoOf(before) || at > clock.Mono() {
			t.Errorf("%s: HeadAt %v is not the head's reading", path, at)
		}
		buf := make([]byte, 8)
		n, _ := resp.ReadBody(buf)
		for n < 2 {
			m, err := resp.ReadBody(buf[n:])
			n += m
			if err != nil {
				break
			}
		}
		if got := resp.BodyWithHead(); got != withHead {
			t.Errorf("%s: BodyWithHead %v, want %v", path, got, withHead)
		}
		io.Copy(io.Discard, resp.Body())
		resp.Close()
	}
	get("/", true)
	get("/late", false)
	get("/", true)
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the connection was taken for idle since the head of a response whose body came %v later", n, late)
	}
}

// TestH1IdleEntryKeptWhileUsed: an endpoint's idle list stays in the pool
// while its connections come and go (put then adds to it, and makes none
// anew), and goes once it has stayed empty through a whole janitor tick.
func TestH1IdleEntryKeptWhileUsed(t *testing.T) {
	s := startRawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	p := newH1Pool((&net.Dialer{}).DialContext, time.Hour, 4, 0)
	defer p.closeAll()
	send := func() Response {
		t.Helper()
		st, err := p.send(context.Background(), &Request{Headers: headers("GET", "/", "x")}, s.addr, 0)
		if err != nil {
			t.Fatal(err)
		}
		resp := st.handle()
		io.Copy(io.Discard, resp.Body())
		return resp
	}
	entry := func() *idleConns {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.idle[s.addr]
	}
	send().Close()
	first := entry()
	if first == nil || len(first.conns) != 1 {
		t.Fatalf("idle entry %+v after one request, want one connection", first)
	}
	busy := send() // the connection is out: the list is empty
	p.sweep(clock.Mono())
	if entry() != first {
		t.Fatal("an entry emptied just now was dropped at the first tick")
	}
	busy.Close()
	p.sweep(clock.Mono())
	if e := entry(); e != first || len(e.conns) != 1 || e.emptyTick {
		t.Fatalf("entry after the connection came back: %+v, want the same with one connection", e)
	}
	busy = send()
	p.sweep(clock.Mono())
	p.sweep(clock.Mono())
	if e := entry(); e != nil {
		t.Fatalf("entry %+v kept after two ticks empty", e)
	}
	busy.Close()
	if e := entry(); e == nil || len(e.conns) != 1 {
		t.Fatalf("entry %+v after the connection came back, want one connection", e)
	}
	// The connection's way back to its entry (h1Conn.home) follows the
	// map: an entry CloseIdleConnections took out is not put in again.
	busy = send()
	p.CloseIdleConnections()
	busy.Close()
	if e := entry(); e == nil || len(e.conns) != 1 {
		t.Fatalf("entry %+v after the connection came back past CloseIdleConnections, want one connection", e)
	}
	// The entry get found last (h1Pool.last) has left the map: get finds
	// the one that took its place.
	send().Close()
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestH1IdleEntryPerEndpoint: get, which tries the entry it found last
// before the map, finds each endpoint's own connections when requests
// alternate between two.
func TestH1IdleEntryPerEndpoint(t *testing.T) {
	a := startRawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"))
	b := startRawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"))
	p := newH1Pool((&net.Dialer{}).DialContext, time.Hour, 4, 0)
	defer p.closeAll()
	send := func(addr, want string) {
		t.Helper()
		st, err := p.send(context.Background(), &Request{Headers: headers("GET", "/", "x")}, addr, 0)
		if err != nil {
			t.Fatal(err)
		}
		resp := st.handle()
		body, _ := io.ReadAll(resp.Body())
		resp.Close()
		if string(body) != want {
			t.Fatalf("body %q from %s, want %q", body, addr, want)
		}
	}
	for range 3 {
		send(a.addr, "a")
		send(b.addr, "b")
		send(b.addr, "b")
		// The same address in other bytes (get compares where the
		// bytes are, and looks it up in the map then).
		send(strings.Clone(a.addr), "a")
		send(strings.Clone(a.addr), "a")
	}
	if na, nb := a.conns.Load(), b.conns.Load(); na != 1 || nb != 1 {
		t.Errorf("%d and %d connections, want 1 each", na, nb)
	}
}
