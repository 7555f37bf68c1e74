package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawConn is a client connection to sluice's listener with its reader
// (pipelined responses share it); the deadline bounds every wait in these
// tests far below the routes' timeouts.
func rawConn(t *testing.T, ts *testServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := dialListener(t, ts)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

func expectEOF(t *testing.T, br *bufio.Reader) {
	t.Helper()
	if b, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed: %q %v", b, err)
	}
}

// countingUpstream echoes the request line and body and counts requests.
func countingUpstream(t *testing.T) (*echoUpstream, *atomic.Int32) {
	var n atomic.Int32
	up := startEcho(t, "up", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
	})
	return up, &n
}

func framingServer(t *testing.T, upAddr, limits string) *testServer {
	return startServer(t, baseConfig(`
[[routes]]
name = "r"
timeout = "60s"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+upAddr+`"]
`+limits))
}

// Request smuggling (RFC 9112 section 6.3): a request with both
// Content-Length and Transfer-Encoding, or with framing another hop could
// read differently, is answered 400 and the connection closed; nothing of
// it reaches the upstream, nor the request hidden in its body.
func TestSmugglingRefusedAtTheListener(t *testing.T) {
	up, upstreamRequests := countingUpstream(t)
	ts := framingServer(t, up.addr, "")
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		c, br := rawConn(t, ts)
		io.WriteString(c, raw)
		resp, _ := readResp(t, br)
		if resp.StatusCode != 400 || !resp.Close {
			t.Fatalf("%q: %d close=%v, want 400 and Connection: close", raw, resp.StatusCode, resp.Close)
		}
		expectEOF(t, br)
	}
	if n := upstreamRequests.Load(); n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
}

// A malformed chunk size is answered 400 at once (the route's timeout is a
// minute; the connection's deadline is 5 s), the connection closed, and no
// upstream slot stays held: with one request allowed to the cluster, the
// next request goes through.
func TestBadChunkSizeAnsweredAtOnce(t *testing.T) {
	up, _ := countingUpstream(t)
	ts := framingServer(t, up.addr, `limits = { max_requests = 1, max_pending_requests = 1 }`)
	client := &http.Client{Timeout: 5 * time.Second}
	for _, bad := range []string{"0x5", "fffffffffffffffffffffffff", "5 junk", "-1", "5\r\nhelloXX"} {
		c, br := rawConn(t, ts)
		io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
		time.Sleep(20 * time.Millisecond) // let the good chunk go upstream first
		io.WriteString(c, bad+"\r\nhello\r\n0\r\n\r\n")
		resp, _ := readResp(t, br)
		if resp.StatusCode != 400 || !resp.Close {
			t.Fatalf("%q: %d close=%v, want 400 and Connection: close", bad, resp.StatusCode, resp.Close)
		}
		expectEOF(t, br)

		resp2, err := client.Post(ts.url("/next"), "text/plain", strings.NewReader("ok"))
		if err != nil {
			t.Fatalf("after %q: %v", bad, err)
		}
		b, _ := io.ReadAll(resp2.Body)
		resp2.Body.Close()
		if resp2.StatusCode != 200 || string(b) != "POST /next ok" {
			t.Fatalf("after %q: %d %q (an upstream slot still held?)", bad, resp2.StatusCode, b)
		}
	}
}

// Keep-alive and pipelining through the proxy: requests written back to
// back on one connection are answered in order on it.
func TestPipelinedRequestsThroughSluice(t *testing.T) {
	up, _ := countingUpstream(t)
	ts := framingServer(t, up.addr, "")
	c, br := rawConn(t, ts)
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n")
	for _, want := range []string{"GET /1 ", "POST /2 abc", "POST /3 def"} {
		resp, body := readResp(t, br)
		if resp.StatusCode != 200 || body != want || resp.Close {
			t.Fatalf("got %d %q close=%v, want 200 %q", resp.StatusCode, body, resp.Close, want)
		}
	}
	// HTTP/1.0 without keep-alive: answered, then closed.
	io.WriteString(c, "GET /4 HTTP/1.0\r\nHost: x\r\n\r\n")
	if _, body := readResp(t, br); body != "GET /4 " {
		t.Fatalf("HTTP/1.0: %q", body)
	}
	expectEOF(t, br)
}

// Expect: 100-continue: sluice says 100 Continue when the body is wanted,
// and the client sends it only then.
func TestExpectContinueThroughSluice(t *testing.T) {
	up, _ := countingUpstream(t)
	ts := framingServer(t, up.addr, "")
	c, br := rawConn(t, ts)
	io.WriteString(c, "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 100 {
		t.Fatalf("got %v %v, want 100 Continue", resp, err)
	}
	io.WriteString(c, "hello")
	if resp, body := readResp(t, br); resp.StatusCode != 200 || body != "POST /c hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

// WebSocket with the client's first frame in the same write as the
// upgrade request: the bytes sluice read past the head reach the upstream.
func TestWebSocketEarlyBytesTunnelled(t *testing.T) {
	ts := framingServer(t, startUpgradeEcho(t), "")
	c, br := rawConn(t, ts)
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nearly-frame")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("got %v %v, want 101", resp, err)
	}
	io.WriteString(c, "+late")
	got := make([]byte, len("early-frame+late"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "early-frame+late" {
		t.Fatalf("echo through the tunnel: %q %v", got, err)
	}
}

// startUpgradeEcho is a minimal upgrade-speaking upstream: it answers a
// WebSocket upgrade with 101 and then echoes bytes (anything else: 400).
func startUpgradeEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
					c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
					return
				}
				c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
				io.Copy(c, br)
			}(c)
		}
	}()
	return ln.Addr().String()
}

// A client that leaves while sluice waits for the upstream ends the
// upstream request (its connection closes), long before the route's
// timeout.
func TestClientGoneCancelsUpstream(t *testing.T) {
	arrived, upstreamDone := make(chan struct{}, 1), make(chan bool, 1)
	up := startEcho(t, "up", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			upstreamDone <- true
		case <-time.After(10 * time.Second):
			upstreamDone <- false
		}
	})
	ts := framingServer(t, up.addr, "")
	c, _ := rawConn(t, ts)
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	<-arrived
	c.Close()
	if !<-upstreamDone {
		t.Fatal("the upstream request went on after the client left")
	}
}
