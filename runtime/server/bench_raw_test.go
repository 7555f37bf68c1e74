package server

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// BenchmarkProxyHTTP1Raw is the plain HTTP/1.1 proxy path through real
// sockets and nothing else: a raw keep-alive client that writes one
// prepared request and reads the response with a fixed buffer, a raw
// upstream that answers every request head with one prepared response.
// Neither side allocates per request, so allocs/op is the proxy's own:
// downstream parse, route, upstream write and read, response write.
//
// Run: go test -run '^$' -bench ProxyHTTP1Raw -benchmem ./runtime/server
// (add -cpuprofile / -memprofile to see what allocates).
func BenchmarkProxyHTTP1Raw(b *testing.B) {
	roundTrip := startRawProxyPath(b, benchRequest)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
}

// proxyHTTP1RawAllocs is the allocations per request the plain HTTP/1.1
// proxy path is held to (the stream core's goal is at most 2): none. The
// connection's active stream is reused with its context, timer and
// registration on the connection's context; the addresses are formatted
// once per connection; the request id is formatted into the stream's
// buffer and made a string only when something reads it.
const proxyHTTP1RawAllocs = 0

// TestProxyHTTP1RawAllocs pins BenchmarkProxyHTTP1Raw's allocations per
// request, so that a change that adds one shows here (lower the constant
// when a change removes one), for wrk's request, one that says
// "Connection: keep-alive", as many clients do, and one that comes with
// X-Forwarded-For fields, as from behind a load balancer.
func TestProxyHTTP1RawAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for name, req := range map[string]string{
		"plain":      benchRequest,
		"keep-alive": "GET /bench HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: bench\r\nConnection: keep-alive\r\n\r\n",
		"behind a load balancer": "GET /bench HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: bench\r\n" +
			"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.2, 192.0.2.1\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			roundTrip := startRawProxyPath(t, req)
			if n := testing.AllocsPerRun(200, roundTrip); n > proxyHTTP1RawAllocs {
				t.Errorf("%v allocations per proxied request, want at most %d", n, proxyHTTP1RawAllocs)
			}
		})
	}
}

// startRawProxyPath starts a raw upstream and sluice before it, and
// returns one warmed-up request (req) through them.
func startRawProxyPath(tb testing.TB, req string) func() {
	upAddr := startRawUpstream(tb, nginxResponse)
	ts := startServer(tb, baseConfig(`
[access_log]
disabled = true
[[routes]]
name = "r"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+upAddr+`"]
`))
	return benchConnWith(tb, ts.ListenerAddr("public"), 100, req)
}

// nginxResponse is the answer of make bench's upstream, nginx's head: its
// Connection: keep-alive goes through the response's hop-by-hop removal.
const nginxResponse = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 05:54:20 GMT\r\n" +
	"Content-Type: text/plain\r\nContent-Length: 20\r\nConnection: keep-alive\r\n\r\nhello from upstream\n"

// benchRequest is the request benchConn sends, wrk's shape.
const benchRequest = "GET /bench HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: bench\r\n\r\n"

// benchConn dials addr and returns one request on that keep-alive
// connection, after warm rounds of it (the pools, the upstream
// connection, the compiled code). It reports failures with Error, not
// Fatal: parallel benchmarks run it on goroutines of their own.
func benchConn(tb testing.TB, addr string, warm int) func() {
	return benchConnWith(tb, addr, warm, benchRequest)
}

// benchConnWith is benchConn with the request to send.
func benchConnWith(tb testing.TB, addr string, warm int, request string) func() {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	req := []byte(request)
	br := bufio.NewReaderSize(c, 16<<10)
	body := make([]byte, 4096)
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			tb.Error(err)
			return
		}
		n, err := readRawResponse(br, body)
		if err != nil {
			tb.Error(err)
			return
		}
		if n != 20 {
			tb.Errorf("body of %d bytes, want 20", n)
		}
	}
	for range warm {
		roundTrip()
	}
	return roundTrip
}

// readRawResponse reads one response head and its Content-Length body
// into body, without allocating; it returns the body's length.
func readRawResponse(br *bufio.Reader, body []byte) (int, error) {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		const cl = "content-length:"
		if len(line) > len(cl) && bytes.EqualFold(line[:len(cl)], []byte(cl)) {
			v := bytes.TrimSpace(line[len(cl):])
			length = 0
			for _, d := range v {
				length = length*10 + int(d-'0')
			}
		}
	}
	if length < 0 || length > len(body) {
		return 0, errRawFraming
	}
	_, err := readFull(br, body[:length])
	return length, err
}

var errRawFraming = &net.AddrError{Err: "response without a usable content-length"}

func readFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := br.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// startRawUpstream answers every request head (GET, no body) on every
// connection with resp, reusing one buffer per connection.
func startRawUpstream(t testing.TB, resp string) string {
	out := []byte(resp)
	return startRawServer(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 16<<10)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 { // the blank line ends a head
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}
	})
}

// startRawServer serves each connection accepted on 127.0.0.1 with serve
// (on a goroutine of its own, the connection closed after) until the test
// ends; it returns the address.
func startRawServer(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}
