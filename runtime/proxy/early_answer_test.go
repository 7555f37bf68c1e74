package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/filter"
	sluiceh2 "github.com/sluice-proxy/sluice/runtime/http2"
)

// earlyUpstream is a raw HTTP/1.1 upstream that answers each request as
// soon as it has its head, before reading any of the body. What it does
// next is its mode:
//   - "stop": reads nothing more and keeps the connection open;
//   - "close": half-closes and discards what still comes (a lingering
//     close, as nginx does);
//   - "reset": closes at once (the kernel resets the connection, since
//     body bytes are unread);
//   - "drain": reads the body to its declared end and keeps the
//     connection, counting the body bytes that are 'z'.
type earlyUpstream struct {
	addr     string
	accepted atomic.Int32 // connections
	zs       atomic.Int64 // 'z' body bytes received ("drain")
	// gate, when set, is waited on (up to 5 s) before each answer.
	gate chan struct{}
}

const earlyReply = "rejected by the upstream\n"

func startEarlyUpstream(t *testing.T, mode string) *earlyUpstream {
	return startGatedUpstream(t, mode, nil)
}

func startGatedUpstream(t *testing.T, mode string, gate chan struct{}) *earlyUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &earlyUpstream{addr: ln.Addr().String(), gate: gate}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	quit := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u.serve(c, mode, quit)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(quit)
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return u
}

func (u *earlyUpstream) serve(c net.Conn, mode string, quit <-chan struct{}) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if u.gate != nil {
			select {
			case <-u.gate:
			case <-time.After(5 * time.Second):
			}
		}
		fmt.Fprintf(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: %d\r\nX-Upstream: early\r\n\r\n%s", len(earlyReply), earlyReply)
		switch mode {
		case "stop":
			<-quit
			return
		case "close":
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, br)
			return
		case "reset":
			c.(*net.TCPConn).SetLinger(0)
			return
		case "drain":
			buf := make([]byte, 32<<10)
			for {
				n, err := req.Body.Read(buf)
				u.zs.Add(int64(bytes.Count(buf[:n], []byte{'z'})))
				if err != nil {
					break
				}
			}
		}
	}
}

// earlyConfig routes everything to the upstream at upAddr, without
// retries; with plugins, through them.
func earlyConfig(upAddr, plugins string) string {
	route := ""
	if plugins != "" {
		route = "plugins = [" + plugins + "]\n"
	}
	return `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[routes]]
name = "r"
match = { path_prefix = "/" }
` + route + `backends = [ { cluster = "up" } ]
retry = { attempts = 0 }
[[clusters]]
name = "up"
endpoints = ["` + upAddr + `"]
`
}

const earlyBodySize = 50 << 20

// serveDownstream serves cm over HTTP/1.1 ("h1") or h2c with prior
// knowledge ("h2") on 127.0.0.1 until the test ends.
func serveDownstream(t *testing.T, cm *ConnectionManager, proto string) string {
	if proto == "h1" {
		return serveManager(t, cm)
	}
	srv := &sluiceh2.Server{}
	return serveConns(t, func(c net.Conn) { srv.ServeConn(c, cm) }, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		srv.Shutdown(ctx)
		cancel()
	})
}

// h2cTransport is an HTTP/2 client speaking h2c with prior knowledge.
func h2cTransport() *http2.Transport {
	return &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// uploadH1 sends a 50 MB POST on a new connection, the body written as
// fast as the proxy takes it while the answer is read. It returns the
// answer, how much of the body went out, and whether the connection then
// closed.
func uploadH1(t *testing.T, addr string) (resp *http.Response, body string, sent int64, closed bool) {
	t.Helper()
	c := startUploadH1(t, addr)
	defer c.Close()
	writerDone := make(chan int64, 1)
	go func() {
		chunk := bytes.Repeat([]byte{'u'}, 64<<10)
		var n int64
		for n < earlyBodySize {
			k, err := c.Write(chunk)
			n += int64(k)
			if err != nil {
				break
			}
		}
		writerDone <- n
	}()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		<-writerDone
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	sent = <-writerDone
	if sent < earlyBodySize {
		// The proxy stopped taking the body: what follows must be the
		// connection's end, not another answer nor a hang.
		rest, err := io.ReadAll(br)
		closed = len(rest) == 0 && err == nil
		if !closed {
			t.Errorf("after the answer, with the body unsent: %q, %v; want the connection closed", rest, err)
		}
	}
	return resp, string(b), sent, closed
}

// startUploadH1 opens a connection and sends the head of a POST with a
// 50 MB body.
func startUploadH1(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", earlyBodySize)
	return c
}

// leftGoroutines waits (up to 3 s) until no goroutine runs the proxy's,
// the upstream pool's or the HTTP/1.1 codec's code outside the tests'
// own harness, and returns the stacks of those that still do.
func leftGoroutines() []string {
	var left []string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		left = left[:0]
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "_test.go") || strings.Contains(g, "janitor") {
				continue
			}
			for _, pkg := range []string{"runtime/proxy.", "runtime/upstream.", "runtime/http1."} {
				if strings.Contains(g, "sluice/"+pkg) {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
	}
}

func checkNoGoroutineLeft(t *testing.T) {
	t.Helper()
	if left := leftGoroutines(); len(left) > 0 {
		t.Errorf("%d goroutines of the stream left after it ended:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// TestUpstreamEarlyAnswerReachesClient: an HTTP/1.1 upstream answers 413
// on the request head while a 50 MB body is still streaming, then stops
// reading, closes, or resets. The client, over HTTP/1.1 or HTTP/2, gets
// the upstream's answer (not a 502, no hang); an HTTP/1.1 connection
// whose body was not read to its end closes after it; the upstream
// connection is not pooled (each request dials); and nothing of the
// stream is left running.
func TestUpstreamEarlyAnswerReachesClient(t *testing.T) {
	for _, down := range []string{"h1", "h2"} {
		for _, mode := range []string{"stop", "close", "reset"} {
			t.Run(down+"/"+mode, func(t *testing.T) {
				up := startEarlyUpstream(t, mode)
				addr := serveDownstream(t, newTestConnectionManager(t, earlyConfig(up.addr, ""), "public", nil, nil), down)
				tr := h2cTransport()
				const requests = 3
				for i := range requests {
					var status int
					var body, via string
					if down == "h1" {
						resp, b, _, _ := uploadH1(t, addr)
						status, body, via = resp.StatusCode, b, resp.Header.Get("x-upstream")
					} else {
						resp, b := uploadH2(t, tr, addr, nil)
						status, body, via = resp.StatusCode, b, resp.Header.Get("x-upstream")
					}
					if status != 413 || body != earlyReply || via != "early" {
						t.Fatalf("request %d: %d %q (x-upstream %q), want the upstream's 413 %q", i, status, body, via, earlyReply)
					}
				}
				tr.CloseIdleConnections()
				if n := up.accepted.Load(); n != requests {
					t.Errorf("%d upstream connections for %d requests: a connection whose request body was not sent whole went back to the pool", n, requests)
				}
				checkNoGoroutineLeft(t)
			})
		}
	}
}

// uploadH2 sends a 50 MB POST over HTTP/2; the body's first 256 KB are
// 'u', then, once the answer has been read in full, the body goes on
// with 'z' (sent only after the answer) until the stream is refused.
// afterAnswer, when set, runs between the two.
func uploadH2(t *testing.T, tr *http2.Transport, addr string, afterAnswer func()) (*http.Response, string) {
	t.Helper()
	pr, pw := io.Pipe()
	answered := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		if _, err := pw.Write(bytes.Repeat([]byte{'u'}, 256<<10)); err != nil {
			return
		}
		<-answered
		chunk := bytes.Repeat([]byte{'z'}, 64<<10)
		for sent := 256 << 10; sent < earlyBodySize; sent += len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+addr+"/upload", pr)
	req.ContentLength = earlyBodySize
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		close(answered)
		pr.CloseWithError(err)
		<-writerDone
		t.Fatalf("POST over HTTP/2: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer over HTTP/2: %v", err)
	}
	if afterAnswer != nil {
		afterAnswer()
	}
	close(answered)
	// The rest goes until the proxy resets the stream or the body ends.
	select {
	case <-writerDone:
	case <-time.After(5 * time.Second):
	}
	pr.CloseWithError(io.ErrClosedPipe)
	<-writerDone
	return resp, string(b)
}

// stopAtBodyEnd pauses the request at its body's end and never resumes
// it (a filter that waits for something that does not come); paused
// gets a signal then.
type stopAtBodyEnd struct {
	*recorder
	paused chan struct{}
}

func (f stopAtBodyEnd) OnRequestBody(s filter.Stream, b *filter.Body, eos bool) filter.Status {
	f.recorder.OnRequestBody(s, b, eos)
	if eos {
		select {
		case f.paused <- struct{}{}:
		default: // one signal is enough
		}
		return filter.StopIteration
	}
	return filter.Continue
}

// stopAtBodyEndFinal is stopAtBodyEnd promising that OnDone is its last
// call (as the Wasm binding does), so the active stream may be reused.
type stopAtBodyEndFinal struct{ stopAtBodyEnd }

func (stopAtBodyEndFinal) DoneIsFinal() bool { return true }

// TestPauseAtBodyEndAfterEarlyAnswer: a filter pauses the request at its
// body's end, which the body pump reaches on the upstream transport's
// goroutine after the upstream has answered. The answer reaches the
// client, and the stream's end stops the pump: no goroutine of the
// stream is left, with a filter whose OnDone is final or not, over
// HTTP/1.1 and HTTP/2.
func TestPauseAtBodyEndAfterEarlyAnswer(t *testing.T) {
	for _, down := range []string{"h1", "h2"} {
		for _, final := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/final=%v", down, final), func(t *testing.T) {
				// The upstream answers once the pump is paused at the body's
				// end: the pump then waits for a resume when the stream ends.
				paused := make(chan struct{}, 1)
				up := startGatedUpstream(t, "drain", paused)
				rec := &recorders{name: "rec", mk: func(r *recorder) filter.HTTPFilter {
					if final {
						return stopAtBodyEndFinal{stopAtBodyEnd{r, paused}}
					}
					return stopAtBodyEnd{r, paused}
				}}
				decl, names, m := declarePlugins([]filter.Factory{rec})
				cfg := strings.Replace(earlyConfig(up.addr, names), "[[routes]]", decl+"\n[[routes]]", 1)
				addr := serveDownstream(t, newTestConnectionManager(t, cfg, "public", m, nil), down)
				h1 := &http.Transport{}
				h2 := h2cTransport()
				for i := range 5 {
					// Past the first piece, so the body streams through the
					// pump on the transport's goroutine.
					size := 64<<10 + i*40000
					req, _ := http.NewRequest("POST", "http://"+addr+"/x", bytes.NewReader(bytes.Repeat([]byte{'b'}, size)))
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					var resp *http.Response
					var err error
					if down == "h1" {
						resp, err = h1.RoundTrip(req.WithContext(ctx))
					} else {
						resp, err = h2.RoundTrip(req.WithContext(ctx))
					}
					if err != nil {
						cancel()
						t.Fatalf("request %d: %v", i, err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					cancel()
					if resp.StatusCode != 413 || string(b) != earlyReply {
						t.Fatalf("request %d: %d %q, want the upstream's 413", i, resp.StatusCode, b)
					}
				}
				if n := up.accepted.Load(); n != 5 {
					t.Errorf("%d upstream connections for 5 requests: a connection whose request body was held back went back to the pool", n)
				}
				// While the client's connections stay open (the stream's end
				// must stop the pump, not the connection's).
				checkNoGoroutineLeft(t)
				h1.CloseIdleConnections()
				h2.CloseIdleConnections()
			})
		}
	}
}

// TestEarlyAnswerStopsRequestBody: once an HTTP/1.1 upstream's answer has
// ended, the rest of the request body is not forwarded to it (Envoy
// resets such an upstream request), and its connection is not pooled,
// though the upstream would go on reading. The client sends 256 KB of
// body, reads the whole answer, and only then sends more ('z'): none of
// it reaches the upstream.
func TestEarlyAnswerStopsRequestBody(t *testing.T) {
	for _, down := range []string{"h1", "h2"} {
		t.Run(down, func(t *testing.T) {
			up := startEarlyUpstream(t, "drain")
			addr := serveDownstream(t, newTestConnectionManager(t, earlyConfig(up.addr, ""), "public", nil, nil), down)
			tr := h2cTransport()
			const requests = 3
			for i := range requests {
				var resp *http.Response
				var body string
				if down == "h1" {
					resp, body = uploadH1ThenMore(t, addr)
				} else {
					resp, body = uploadH2(t, tr, addr, nil)
				}
				if resp.StatusCode != 413 || body != earlyReply {
					t.Fatalf("request %d: %d %q, want the upstream's 413", i, resp.StatusCode, body)
				}
			}
			tr.CloseIdleConnections()
			if z := up.zs.Load(); z > 0 {
				t.Errorf("the upstream got %d body bytes the client sent after the answer had ended", z)
			}
			if n := up.accepted.Load(); n != requests {
				t.Errorf("%d upstream connections for %d requests: a connection whose request body was cut went back to the pool", n, requests)
			}
			checkNoGoroutineLeft(t)
		})
	}
}

// uploadH1ThenMore sends a 50 MB POST over HTTP/1.1: 256 KB of 'u', then,
// once the whole answer has been read, 'z' until the proxy stops taking
// it (at most 8 MB).
func uploadH1ThenMore(t *testing.T, addr string) (*http.Response, string) {
	t.Helper()
	c := startUploadH1(t, addr)
	defer c.Close()
	if _, err := c.Write(bytes.Repeat([]byte{'u'}, 256<<10)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	chunk := bytes.Repeat([]byte{'z'}, 64<<10)
	for sent := 0; sent < 8<<20; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			break
		}
	}
	return resp, string(b)
}

// TestCutBodyClosesConnection: an HTTP/1.1 request body cut short by an
// upstream's early answer closes the downstream connection after the
// answer, even when no read of the body is waiting on the client at the
// stream's end: the client sends one more chunk once it has the answer
// (the last the tries read) and then nothing. The connection used to wait
// for the rest to drain it, until the header timeout.
func TestCutBodyClosesConnection(t *testing.T) {
	up := startEarlyUpstream(t, "stop")
	addr := serveManager(t, newTestConnectionManager(t, earlyConfig(up.addr, ""), "public", nil, nil))
	for i := range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || string(b) != earlyReply {
			t.Fatalf("request %d: %d %q, want the upstream's 413", i, resp.StatusCode, b)
		}
		io.WriteString(c, "5\r\nworld\r\n")
		start := time.Now()
		if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
			t.Errorf("request %d, after the answer: %q, %v after %v; want the connection closed", i, rest, err, time.Since(start).Round(time.Millisecond))
		}
		c.Close()
	}
	checkNoGoroutineLeft(t)
}
