package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/iohandle"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// startServer serves the net/http-style handler h on a loopback port
// until the test ends, through streamBridge: every byte on the wire is
// the stream's.
func startServer(t *testing.T, h http.Handler, tune func(*Server)) (*Server, string) {
	t.Helper()
	return serveLoopback(t, streamBridge{h}, tune)
}

// serveLoopback serves h on a loopback port until the test ends.
func serveLoopback(t *testing.T, h stream.Handler, tune func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, h, tune)
}

// serveOn serves h on ln until the test ends.
func serveOn(t *testing.T, ln net.Listener, h stream.Handler, tune func(*Server)) (*Server, string) {
	t.Helper()
	s := &Server{StreamHandler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	if tune != nil {
		tune(s)
	}
	t.Cleanup(func() { s.Close() }) // after the accept loop's end (cleanups run last first)
	acceptEach(t, ln, func(c net.Conn) { go s.ServeConn(c, nil) })
	return s, ln.Addr().String()
}

// acceptEach calls serve with each connection ln accepts until the test
// ends, when ln is closed and the loop waited for.
func acceptEach(t *testing.T, ln net.Listener, serve func(net.Conn)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
}

// dial is a raw client connection with a deadline bounding the test.
func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return resp, string(b)
}

// expectClosed says the server closed the connection (EOF, nothing more).
func expectClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	b, err := br.ReadByte()
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("connection still open: read %q", b)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("connection still open: %v", err)
	}
}

// echo answers with the method, path, body and trailers it received.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 499)
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
	for k, v := range r.Trailer {
		fmt.Fprintf(w, " %s=%s", k, strings.Join(v, ","))
	}
})

func TestServerKeepAliveAndPipelining(t *testing.T) {
	_, addr := startServer(t, echo, nil)
	c, br := dial(t, addr)
	// Three requests in one write: the server answers them in order on
	// the same connection. A framing field in the trailers is dropped.
	io.WriteString(c, "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"+
		"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"+
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\nContent-Length: 99\r\n\r\n")
	for _, want := range []string{"GET /a?x=1 ", "POST /b hello", "POST /c abcde X-Sum=5"} {
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
		if resp.Close {
			t.Fatalf("response to %q closes the connection", want)
		}
	}
	// Still open for a fourth.
	io.WriteString(c, "GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	resp, body := readResponse(t, br, "GET")
	if body != "GET /d " || !resp.Close {
		t.Fatalf("last request: %q close=%v", body, resp.Close)
	}
	expectClosed(t, br)
}

// A request with Content-Length and Transfer-Encoding is answered 400 and
// the connection closed; the handler never sees it, nor what follows.
func TestServerRefusesSmuggling(t *testing.T) {
	var calls atomic.Int32
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
	}), nil)
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 40\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n",
	} {
		c, br := dial(t, addr)
		io.WriteString(c, raw)
		resp, _ := readResponse(t, br, "POST")
		if resp.StatusCode != 400 || !resp.Close {
			t.Fatalf("%q: status %d close=%v, want 400 and close", raw, resp.StatusCode, resp.Close)
		}
		expectClosed(t, br)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("handler called %d times", n)
	}
}

// A malformed chunk size is a 400 at once, while the handler is still
// reading (it waits for the test before returning), and the request's
// context ends so nothing waits for the rest of the body.
func TestServerBadChunkSizeAnsweredAtOnce(t *testing.T) {
	for _, bad := range []string{"0x5", "fffffffffffffffffffff", "5 junk", "-1", "", "5\r\nhelloXX"} {
		t.Run(bad, func(t *testing.T) {
			release := make(chan struct{})
			readErr := make(chan error, 1)
			ctxDone := make(chan bool, 1)
			_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := io.ReadAll(r.Body)
				readErr <- err
				select {
				case <-r.Context().Done():
					ctxDone <- true
				case <-time.After(5 * time.Second):
					ctxDone <- false
				}
				<-release
				w.WriteHeader(502) // too late: the 400 went out
			}), nil)
			c, br := dial(t, addr)
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"+bad+"\r\nhello\r\n0\r\n\r\n")
			resp, _ := readResponse(t, br, "POST")
			close(release)
			if resp.StatusCode != 400 || !resp.Close {
				t.Fatalf("status %d close=%v, want 400 and close", resp.StatusCode, resp.Close)
			}
			if err := <-readErr; err == nil {
				t.Fatal("handler read the body without error")
			}
			if !<-ctxDone {
				t.Fatal("request context not cancelled")
			}
			expectClosed(t, br)
		})
	}
}

func TestServerExpectContinue(t *testing.T) {
	_, addr := startServer(t, echo, nil)
	c, br := dial(t, addr)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	// The interim response comes before the client sends the body.
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q %v, want 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue followed by %q", blank)
	}
	io.WriteString(c, "hello")
	if resp, body := readResponse(t, br, "POST"); resp.StatusCode != 200 || body != "POST /up hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}

	// A handler that answers without reading: no 100 Continue, and the
	// connection is not reused (the client may never send the body).
	_, addr = startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}), nil)
	c, br = dial(t, addr)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := readResponse(t, br, "POST"); resp.StatusCode != 403 {
		t.Fatalf("got %d, want 403", resp.StatusCode)
	}
	expectClosed(t, br)
}

func TestServerHTTP10(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part1 ")
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "part2")
	}), nil)
	// Without keep-alive: one response, then the connection closes.
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	resp, body := readResponse(t, br, "GET")
	if body != "part1 part2" || resp.ContentLength != 11 {
		t.Fatalf("got %q (length %d)", body, resp.ContentLength)
	}
	expectClosed(t, br)

	// With keep-alive the connection stays; a streamed body has no
	// chunked coding in HTTP/1.0, so it ends with the connection.
	c, br = dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body = readResponse(t, br, "GET")
	if body != "part1 part2" || resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("got %q, Connection %q", body, resp.Header.Get("Connection"))
	}
	io.WriteString(c, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body = readResponse(t, br, "GET")
	if body != "part1 part2" || len(resp.TransferEncoding) != 0 || !resp.Close {
		t.Fatalf("streamed: %q TE %v close=%v", body, resp.TransferEncoding, resp.Close)
	}
	expectClosed(t, br)
}

func TestServerChunkedResponseWithTrailers(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Declared")
		w.WriteHeader(200)
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		w.Write([]byte(strings.Repeat("b", 10000)))
		w.Header().Set("X-Declared", "1")
		w.Header().Set(http.TrailerPrefix+"X-Late", "2")
	}), nil)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 10001 {
		t.Fatalf("body %d bytes, %v", len(b), err)
	}
	if len(resp.TransferEncoding) != 1 || resp.Trailer.Get("X-Declared") != "1" || resp.Trailer.Get("X-Late") != "2" {
		t.Fatalf("TE %v trailers %v", resp.TransferEncoding, resp.Trailer)
	}
}

// http.ErrAbortHandler closes the connection after what was written: the
// client sees the response cut, not completed.
func TestServerAbortHandler(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}), nil)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || string(b) != "partial" {
		t.Fatalf("body %q err %v, want the partial body and an error", b, err)
	}
}

// An unread request body is drained so the connection carries the next
// request.
func TestServerDrainsUnreadBody(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}), nil)
	c, br := dial(t, addr)
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, want := range []string{"/a", "/b"} {
		if _, body := readResponse(t, br, "GET"); body != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
}

func TestServerLimits(t *testing.T) {
	_, addr := startServer(t, echo, func(s *Server) { s.Limits = Limits{MaxHeaderBytes: 8 << 10, MaxHeaders: 20} })
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", 9<<10) + "\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X: a\r\n", 21) + "\r\n",
	} {
		c, br := dial(t, addr)
		io.WriteString(c, raw)
		if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 431 {
			t.Fatalf("got %d, want 431", resp.StatusCode)
		}
		expectClosed(t, br)
	}
	// A head that grows the buffer past its pooled size still works.
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nX: "+strings.Repeat("a", 6<<10)+"\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, want := range []string{"GET / ", "GET /next "} {
		if _, body := readResponse(t, br, "GET"); body != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
}

func TestServerIdleTimeout(t *testing.T) {
	_, addr := startServer(t, echo, func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	readResponse(t, br, "GET")
	expectClosed(t, br) // within the dial's 10 s bound, long after 100 ms
}

// Shutdown closes idle connections, lets the request in flight finish
// (with Connection: close), and returns once both are gone.
func TestServerShutdown(t *testing.T) {
	started, finish := make(chan struct{}), make(chan struct{})
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-finish
		}
		io.WriteString(w, "done")
	}), nil)
	idle, idleBr := dial(t, addr)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	readResponse(t, idleBr, "GET")

	busy, busyBr := dial(t, addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	expectClosed(t, idleBr)
	close(finish)
	resp, body := readResponse(t, busyBr, "GET")
	if body != "done" || !resp.Close {
		t.Fatalf("in-flight request: %q close=%v", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A client that goes away while the handler waits (its request read in
// full) ends the request's context, so an upstream call can stop; a slow
// request on a live connection keeps its context, and bytes the client
// pipelines meanwhile are its next request.
func TestServerNoticesClientGone(t *testing.T) {
	cancelled := make(chan bool, 1)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/wait":
			io.ReadAll(r.Body) // the watch starts once the request is read
			select {
			case <-r.Context().Done():
				cancelled <- true
			case <-time.After(5 * time.Second):
				cancelled <- false
			}
		case "/slow":
			time.Sleep(3 * watchDelay)
			if r.Context().Err() != nil {
				t.Error("context of a live client's request ended")
			}
		}
		io.WriteString(w, r.URL.Path)
	}), nil)
	for _, req := range []string{
		"GET /wait HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /wait HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab",
	} {
		c, _ := dial(t, addr)
		io.WriteString(c, req)
		time.Sleep(2 * watchDelay)
		c.Close()
		if !<-cancelled {
			t.Fatalf("%q: context not ended when the client left", req)
		}
	}

	c, br := dial(t, addr)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(2 * watchDelay) // the watch is reading now
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, want := range []string{"/slow", "/next"} {
		if _, body := readResponse(t, br, "GET"); body != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
}

// The watch's timer is the connection's, not reset for every request: a
// run of fast requests starts it about once per delay. A slow request
// after them is still watched: the client leaving ends its context.
func TestServerWatchTimerNotPerRequest(t *testing.T) {
	cancelled := make(chan bool, 1)
	srv, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			select {
			case <-r.Context().Done():
				cancelled <- true
			case <-time.After(5 * time.Second):
				cancelled <- false
			}
		}
		io.WriteString(w, r.URL.Path)
	}), nil)
	c, br := dial(t, addr)
	const n = 200
	start := time.Now()
	for i := 0; i < n; i++ {
		io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponse(t, br, "GET")
	}
	elapsed := time.Since(start)
	srv.mu.Lock()
	var starts int
	for cn := range srv.conns {
		cn.watch.mu.Lock()
		starts = cn.watch.timer.Starts()
		cn.watch.mu.Unlock()
	}
	srv.mu.Unlock()
	if limit := 2 + int(elapsed/watchDelay); starts > limit {
		t.Fatalf("the watch's timer started %d times for %d requests in %v; want at most %d", starts, n, elapsed, limit)
	}

	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(3 * watchDelay) // up to two delays, and some slack
	c.Close()
	if !<-cancelled {
		t.Fatal("context not ended when the client left during a slow request")
	}
}

// BenchmarkServerKeepAlive is one keep-alive request through the server
// to a stream handler that writes a small body, over loopback, beside
// net/http's server doing the same; the client reuses its buffers, so
// allocs/op are the server's.
func BenchmarkServerKeepAlive(b *testing.B) {
	run := func(b *testing.B, client func() error) {
		b.ReportAllocs()
		for b.Loop() {
			if err := client(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("http1", func(b *testing.B) {
		s := &Server{StreamHandler: smallStreamHandler()}
		b.Cleanup(s.Close)
		client, _ := keepAliveClient(b, typicalRequest, func(c net.Conn) { s.ServeConn(c, nil) })
		run(b, client)
	})
	b.Run("net-http", func(b *testing.B) {
		body := []byte("hello from the handler\n")
		l := &oneConnListener{conns: make(chan net.Conn, 1), done: make(chan struct{})}
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		})}
		go s.Serve(l)
		b.Cleanup(func() { s.Close() })
		client, _ := keepAliveClient(b, typicalRequest, func(c net.Conn) { l.conns <- c })
		run(b, client)
	})
}

// oneConnListener hands net/http's server the connections it is given.
type oneConnListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }

// How a response is framed, by what the handler did: the head and body a
// client reads back, and that the connection carries the next request.
func TestServerResponseFraming(t *testing.T) {
	big := strings.Repeat("x", 20000)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "small")
		case "/big-declared":
			w.Header().Set("Content-Length", itoa(len(big)))
			io.WriteString(w, big)
		case "/big":
			io.WriteString(w, big)
		case "/head":
			w.Header().Set("Content-Length", "1234")
			w.WriteHeader(200)
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(304)
		case "/103":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(103)
			io.WriteString(w, "final")
		case "/split":
			w.Header().Set("X-Bad", "a\r\nSet-Cookie: evil=1")
			io.WriteString(w, "ok")
		}
	}), nil)
	expectFraming(t, addr, []framingCase{
		{"GET", "/small", 200, 5, false, "small", ""},
		{"GET", "/big-declared", 200, int64(len(big)), false, big, ""},
		{"GET", "/big", 200, -1, true, big, ""},
		{"HEAD", "/head", 200, 1234, false, "", ""},
		{"GET", "/204", 204, 0, false, "", ""},
		{"GET", "/304", 304, 0, false, "", ""},
		{"GET", "/103", 200, 5, false, "final", ""},
		{"GET", "/split", 200, 2, false, "ok", ""},
	})

}

// BenchmarkIdleConnMemory reports the resident memory an idle keep-alive
// connection costs the server (after one request each; the client's side
// in this process is a bare socket), as RSS growth over 1,000 of them,
// beside net/http's server. Run one sub-benchmark per process with
// -benchtime 1x: memory freed by one run is reused by the next.
func BenchmarkIdleConnMemory(b *testing.B) {
	b.Run("http1", func(b *testing.B) {
		idleConnMemory(b, func(ln net.Listener) func() {
			return serveForMemory(ln)
		})
	})
	// On the sockets sluice's listeners give (iohandle), which can wait
	// for a request without a read buffer.
	b.Run("http1-iohandle", func(b *testing.B) {
		idleConnMemory(b, func(ln net.Listener) func() {
			return serveForMemory(iohandle.Listener(ln))
		})
	})
	b.Run("net-http", func(b *testing.B) {
		idleConnMemory(b, func(ln net.Listener) func() {
			s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
			go s.Serve(ln)
			return func() { s.Close() }
		})
	})
}

// serveForMemory serves ln as a listener does (an idle timeout set, as
// sluice always has one) until the returned func.
func serveForMemory(ln net.Listener) func() {
	s := &Server{StreamHandler: streamFunc(func(s stream.ServerStream) {
		s.WriteHeaders(headers("200"), false)
		s.WriteBody([]byte("ok"), true)
	}), IdleTimeout: time.Minute}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.ServeConn(c, nil)
		}
	}()
	return s.Close
}

// idleMemoryChild marks the process idleConnMemory runs a measure in.
const idleMemoryChild = "SLUICE_IDLE_MEMORY_CHILD"

// idleConnMemory measures in a process of its own, this test binary run
// again for this sub-benchmark alone: in a process where another ran
// before, the runtime hands its goroutines' kept stacks and freed heap to
// this one, whose RSS then grew less than its connections cost (7.5
// against 9.9 KB, or below zero).
func idleConnMemory(b *testing.B, serve func(net.Listener) func()) {
	if os.Getenv(idleMemoryChild) == "" {
		name := strings.SplitN(b.Name(), "/", 2)
		for b.Loop() {
			cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.benchtime=1x",
				"-test.bench=^"+name[0]+"$/^"+regexp.QuoteMeta(name[1])+"$")
			cmd.Env = append(os.Environ(), idleMemoryChild+"=1")
			out, err := cmd.CombinedOutput()
			m := regexp.MustCompile(`(-?[0-9.]+) rss-bytes/conn`).FindSubmatch(out)
			if err != nil || m == nil {
				b.Fatalf("measuring in a process of its own: %v\n%s", err, out)
			}
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			b.ReportMetric(v, "rss-bytes/conn")
		}
		return
	}
	const conns = 1000
	for b.Loop() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		stop := serve(ln)
		runtime.GC()
		before := rss(b)
		clients := make([]net.Conn, 0, conns)
		buf := make([]byte, 512)
		for range conns {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		b.ReportMetric(float64(rss(b)-before)/conns, "rss-bytes/conn")
		for _, c := range clients {
			c.Close()
		}
		ln.Close()
		stop()
	}
}

func rss(b *testing.B) int64 {
	f, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skip("no /proc/self/statm")
	}
	var size, resident int64
	fmt.Sscan(string(f), &size, &resident)
	return resident * int64(os.Getpagesize())
}

// A head that does not come whole has read_header_timeout to finish (a
// slowloris client is cut off, though the idle timeout is longer).
func TestServerReadHeaderTimeout(t *testing.T) {
	_, addr := startServer(t, echo, func(s *Server) {
		s.ReadHeaderTimeout, s.IdleTimeout = 200*time.Millisecond, time.Minute
	})
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	readResponse(t, br, "GET")
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n") // never finished
	expectClosed(t, br)                                // within the dial's 10 s, not the minute
}

// passConn is a listener's wrapper that leaves writes alone.
type passConn struct{ net.Conn }

func (c *passConn) WriteThrough() net.Conn { return c.Conn }

// Through wrappers that say their writes pass through, a large response
// is written on the connection underneath (where net.Buffers is one
// writev) and arrives whole.
func TestServerWritesThroughWrappers(t *testing.T) {
	big := strings.Repeat("y", 50000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{StreamHandler: streamBridge{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(big)))
		io.WriteString(w, big)
	})}}
	defer s.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wrapped := &passConn{&passConn{c}}
		if _, ok := writeThrough(wrapped).(*net.TCPConn); !ok {
			t.Errorf("writeThrough gave %T, want the *net.TCPConn", writeThrough(wrapped))
		}
		s.ServeConn(wrapped, nil)
	}()
	c, br := dial(t, ln.Addr().String())
	for range 2 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, body := readResponse(t, br, "GET"); body != big {
			t.Fatalf("body of %d bytes, want %d", len(body), len(big))
		}
	}
}

// framingCase is a request and how its response must come back.
type framingCase struct {
	method, path string
	status       int
	length       int64
	chunked      bool
	body         string
	trailer      string // X-Sum
}

// expectFraming sends the cases' requests on one connection and checks
// each response's framing; none may close the connection, and a CRLF in
// a field value must not have split the head.
func expectFraming(t *testing.T, addr string, cases []framingCase) {
	t.Helper()
	c, br := dial(t, addr)
	for _, tt := range cases {
		io.WriteString(c, tt.method+" "+tt.path+" HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := readResponse(t, br, tt.method)
		if resp.StatusCode == 103 {
			resp, body = readResponse(t, br, tt.method)
		}
		if resp.StatusCode != tt.status || resp.ContentLength != tt.length || (len(resp.TransferEncoding) > 0) != tt.chunked || body != tt.body {
			t.Fatalf("%s %s: %d length %d TE %v body %d bytes", tt.method, tt.path, resp.StatusCode, resp.ContentLength, resp.TransferEncoding, len(body))
		}
		if got := resp.Trailer.Get("X-Sum"); got != tt.trailer || resp.Trailer.Get("Content-Length") != "" {
			t.Fatalf("%s: trailers %v", tt.path, resp.Trailer)
		}
		if resp.Header.Get("Set-Cookie") != "" || resp.Close {
			t.Fatalf("%s: Set-Cookie %q close=%v", tt.path, resp.Header.Get("Set-Cookie"), resp.Close)
		}
	}
}

// Bytes that name no HTTP version: a 400 on a plain HTTP/1.1 port, but on a
// port that also speaks h2c they are an invalid HTTP/2 connection preface,
// which RFC 9113 makes a connection error: closed without an answer
// (h2spec 3.5/2 sends exactly this). A request with a bad HTTP version
// still gets its 400 there.
func TestServerNotHTTPOnH2CPort(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range []struct {
		name, send string
		h2c        bool
		want       string
	}{
		{"plain port", "INVALID CONNECTION PREFACE\r\n\r\n", false, "HTTP/1.1 400 "},
		{"h2c port", "INVALID CONNECTION PREFACE\r\n\r\n", true, ""},
		{"h2c port, bad HTTP version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", true, "HTTP/1.1 400 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startServer(t, ok, func(s *Server) {
				if tc.h2c {
					s.H2C = func(c net.Conn, _ context.Context) { c.Close() }
				}
			})
			c, br := dial(t, addr)
			io.WriteString(c, tc.send)
			got, err := io.ReadAll(br)
			if err != nil {
				t.Fatalf("reading: %v (want the connection closed)", err)
			}
			if !strings.HasPrefix(string(got), tc.want) || (tc.want == "" && len(got) != 0) {
				t.Fatalf("got %q, want a start of %q", got, tc.want)
			}
		})
	}
}

// A kept-alive connection waits for its next request without a read
// buffer: the buffer goes back to the pool, and the request is read into
// one taken again, most often the one another connection just gave back.
// Clients that pipeline, that send their requests a few bytes at a time
// and that pause between requests, all at once on iohandle's sockets
// (which can wait without a buffer), each get their own answers in order,
// and the server did wait without buffers.
func TestServerIdleWithoutBufferKeepsClientsApart(t *testing.T) {
	var waits, held atomic.Int32
	testHookIdle = func(c *conn) {
		waits.Add(1)
		if c.r.buf != nil || c.r.pooled != nil || c.r.retired != nil {
			held.Add(1)
		}
	}
	t.Cleanup(func() { testHookIdle = nil })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, addr := serveOn(t, iohandle.Listener(ln), streamBridge{echo}, nil)
	t.Cleanup(func() {
		// Every connection's goroutine is gone before the hook is unset
		// (cleanups run last-registered first).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})

	const clients, rounds = 6, 15
	request := func(client, round, k int, kind string) (string, string) {
		body := fmt.Sprintf("%s-%d-%d-%d", kind, client, round, k)
		return fmt.Sprintf("POST /%s/%d/%d/%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", kind, client, round, k, len(body), body),
			fmt.Sprintf("POST /%s/%d/%d/%d %s", kind, client, round, k, body)
	}
	errs := make(chan error, 2*clients)
	run := func(client int, kind string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for round := range rounds {
			var wants []string
			switch kind {
			case "pipelined": // three requests in one write
				var all string
				for k := range 3 {
					req, want := request(client, round, k, kind)
					all += req
					wants = append(wants, want)
				}
				if _, err := io.WriteString(c, all); err != nil {
					errs <- err
					return
				}
			case "slow": // seven bytes at a time, then a pause before the next request
				req, want := request(client, round, 0, kind)
				for len(req) > 0 {
					n := min(7, len(req))
					if _, err := io.WriteString(c, req[:n]); err != nil {
						errs <- err
						return
					}
					req = req[n:]
					time.Sleep(time.Millisecond)
				}
				wants = append(wants, want)
			}
			for _, want := range wants {
				resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
				if err != nil {
					errs <- fmt.Errorf("%s client %d: %v", kind, client, err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil || string(b) != want {
					errs <- fmt.Errorf("%s client %d got %q, %v; want %q", kind, client, b, err, want)
					return
				}
			}
			if kind == "slow" {
				time.Sleep(2 * time.Millisecond)
			}
		}
		errs <- nil
	}
	for i := range clients {
		go run(i, "pipelined")
		go run(i, "slow")
	}
	for range 2 * clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if waits.Load() == 0 {
		t.Fatal("no connection waited for a request without its buffer")
	}
	if n := held.Load(); n > 0 {
		t.Fatalf("%d of %d waits for a request held a read buffer", n, waits.Load())
	}
}
