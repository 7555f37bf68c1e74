package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

func headers(method, path, authority string, kv ...string) *stream.HeaderMap {
	h := new(stream.HeaderMap)
	h.Add(stream.Method, method)
	h.Add(stream.Path, path)
	h.Add(stream.Authority, authority)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// readAll reads a Response's body to its end and closes it.
func readAll(t *testing.T, r Response) (string, error) {
	t.Helper()
	defer r.Close()
	var out []byte
	buf := make([]byte, 7) // small: bodies come in several reads
	for {
		n, err := r.ReadBody(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return string(out), nil
		}
		if err != nil {
			return string(out), err
		}
	}
}

func send(t *testing.T, c *Cluster, req *Request) (Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c.Send(ctx, req, Pick{})
}

func field(h *stream.HeaderMap, name string) string {
	v, _ := h.Get(name)
	return string(v)
}

// TestSendRequestBodies: what the upstream receives for each kind of
// request body (whole, streamed with a length, streamed chunked with
// trailers), and that it answers over one kept-alive connection.
func TestSendRequestBodies(t *testing.T) {
	b := startHTTP(t, "echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("x-te", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("x-cl", r.Header.Get("Content-Length"))
		w.Header().Set("x-trailer", r.Trailer.Get("X-Checksum"))
		w.Header().Set("x-line", r.Method+" "+r.RequestURI+" "+r.Host)
		w.Write(body)
	}), false)
	c := h1Cluster(t, b.addr, config.Limits{})
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("stream"))
		pw.Write([]byte("ed"))
		pw.Close()
	}()
	trailers := new(stream.HeaderMap)
	tests := []struct {
		name             string
		req              *Request
		body, te, cl, tr string
	}{
		{"whole", &Request{Headers: headers("POST", "/a%2Fb?x=1", "svc.example"), Body: []byte("sized")}, "sized", "", "5", ""},
		{"whole, larger than written inline", &Request{Headers: headers("POST", "/", "svc.example"), Body: bytes.Repeat([]byte("x"), wholeBodyInline+1)}, strings.Repeat("x", wholeBodyInline+1), "", strconv.Itoa(wholeBodyInline + 1), ""},
		{"whole empty", &Request{Headers: headers("POST", "/", "svc.example"), Body: []byte{}}, "", "", "0", ""},
		{"stream with length", &Request{Headers: headers("PUT", "/", "svc.example"), BodyStream: strings.NewReader("0123456789"), BodyLength: 10}, "0123456789", "", "10", ""},
		{"stream chunked with trailers", &Request{Headers: headers("POST", "/", "svc.example", "trailer", "x-checksum"), BodyStream: &fillOnEOF{r: pr, h: trailers, name: "x-checksum", value: "abc"}, BodyLength: -1, Trailers: trailers}, "streamed", "chunked", "", "abc"},
		{"whole chunked with trailers", &Request{Headers: headers("POST", "/", "svc.example"), Body: []byte("w"), Trailers: headers("ignored", "/", "", "x-checksum", "def")}, "w", "chunked", "", "def"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := send(t, c, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			h := resp.Headers()
			got, err := readAll(t, resp)
			if err != nil || got != tt.body {
				t.Fatalf("body %q %v, want %q", got, err, tt.body)
			}
			if field(h, "x-te") != tt.te || field(h, "x-cl") != tt.cl || field(h, "x-trailer") != tt.tr {
				t.Errorf("upstream saw te=%q cl=%q trailer=%q, want %q %q %q", field(h, "x-te"), field(h, "x-cl"), field(h, "x-trailer"), tt.te, tt.cl, tt.tr)
			}
		})
	}
	// The request line and Host come from the pseudo-headers.
	resp, err := send(t, c, &Request{Headers: headers("GET", "/a%2Fb?x=1&y=%20", "svc.example:8080")})
	if err != nil {
		t.Fatal(err)
	}
	if got := field(resp.Headers(), "x-line"); got != "GET /a%2Fb?x=1&y=%20 svc.example:8080" {
		t.Errorf("upstream saw %q", got)
	}
	readAll(t, resp)
}

// fillOnEOF sets a trailer when its body ends, as a router copying the
// downstream's trailers does.
type fillOnEOF struct {
	r           io.Reader
	h           *stream.HeaderMap
	name, value string
}

func (f *fillOnEOF) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		f.h.Set(f.name, f.value)
	}
	return n, err
}

// TestSendResponseFraming: response bodies by Content-Length, chunked with
// trailers, until close, and none; a well-framed response keeps its
// connection.
func TestSendResponseFraming(t *testing.T) {
	tests := []struct {
		name, method, wire string
		body               string
		length             int64
		trailer            string
		wantConns          int32 // after two requests
	}{
		{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 5, "", 1},
		{"chunked with trailers", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nGrpc-Status: 0\r\n\r\n", "abcde", -1, "0", 1},
		{"until close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close", "until close", -1, "", 2},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "", 0, "", 1},
		{"no content", "GET", "HTTP/1.1 204 No Content\r\n\r\n", "", 0, "", 1},
		{"interim", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 2, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRawServer(t, canned(tt.wire))
			c := h1Cluster(t, s.addr, config.Limits{})
			for i := 0; i < 2; i++ {
				resp, err := send(t, c, &Request{Headers: headers(tt.method, "/", "x")})
				if err != nil {
					t.Fatal(err)
				}
				if resp.Status() < 200 {
					t.Fatalf("interim status %d surfaced", resp.Status())
				}
				if resp.BodyLength() != tt.length {
					t.Errorf("body length %d, want %d", resp.BodyLength(), tt.length)
				}
				if resp.Headers().Has("transfer-encoding") {
					t.Error("transfer-encoding left in the header map")
				}
				var body string
				var trailer string
				func() {
					defer resp.Close()
					buf := make([]byte, 3)
					for {
						n, err := resp.ReadBody(buf)
						body += string(buf[:n])
						if err == io.EOF {
							break
						}
						if err != nil {
							t.Fatal(err)
						}
					}
					if tr := resp.Trailers(); tr != nil {
						trailer = field(tr, "grpc-status")
					}
				}()
				if body != tt.body || trailer != tt.trailer {
					t.Errorf("body %q trailer %q, want %q %q", body, trailer, tt.body, tt.trailer)
				}
			}
			if got := s.conns.Load(); got != tt.wantConns {
				t.Errorf("%d connections for two requests, want %d", got, tt.wantConns)
			}
		})
	}
}

// TestSendInterimAndUpgrade: more than 10 interim responses fail the try;
// a 101 to a request that did not ask to upgrade fails it too (502 for
// the router) and closes the connection.
func TestSendInterimAndUpgrade(t *testing.T) {
	many := strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", maxInterimResponses+1) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	s := startRawServer(t, canned(many))
	c := h1Cluster(t, s.addr, config.Limits{})
	if _, err := send(t, c, &Request{Headers: headers("GET", "/", "x")}); err == nil || !strings.Contains(err.Error(), "interim") {
		t.Errorf("%d interim responses: %v, want the cap", maxInterimResponses+1, err)
	}

	s = startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\n"+smuggled)
		return true
	})
	c = h1Cluster(t, s.addr, config.Limits{})
	for _, h := range []*stream.HeaderMap{
		headers("GET", "/", "x"),
		headers("GET", "/", "x", "upgrade", "websocket"),
		headers("GET", "/", "x", "connection", "upgrade"),
	} {
		resp, err := send(t, c, &Request{Headers: h})
		if err == nil {
			resp.Close()
			t.Fatalf("unsolicited 101 accepted (status %d)", resp.Status())
		}
		if f := Classify(err); f != Other {
			t.Errorf("unsolicited 101: %v, want Other", f)
		}
	}
	eventually(t, 2*time.Second, "connections closed", func() bool { return c.limiter.active.Load() == 0 })
}

// TestSendMidBodyClose: an upstream that closes before its body's end
// gives io.ErrUnexpectedEOF after the bytes it sent, for Content-Length
// and chunked bodies, and its connection is not reused.
func TestSendMidBodyClose(t *testing.T) {
	for _, wire := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nshort",
	} {
		s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
			io.WriteString(c, wire)
			return false
		})
		c := h1Cluster(t, s.addr, config.Limits{})
		resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
		if err != nil {
			t.Fatal(err)
		}
		body, err := readAll(t, resp)
		if !errors.Is(err, io.ErrUnexpectedEOF) || body != "short" {
			t.Errorf("%q: body %q err %v, want the partial body and unexpected EOF", wire, body, err)
		}
		eventually(t, 2*time.Second, "connection closed", func() bool { return c.limiter.active.Load() == 0 })
	}
}

// TestSendNeverPipelines: with one connection allowed and two requests at
// once, the second is written only after the first response was read to
// its end: the upstream never finds a second request behind the first.
func TestSendNeverPipelines(t *testing.T) {
	var pipelined atomic.Int32
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		// Give a pipelined request time to arrive, then look for it.
		time.Sleep(30 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := br.Peek(1); err == nil {
			pipelined.Add(1)
		}
		c.SetReadDeadline(time.Time{})
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	c := h1Cluster(t, s.addr, config.Limits{MaxConnections: 1})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
			if err != nil {
				t.Error(err)
				return
			}
			if body, err := readAll(t, resp); err != nil || body != "ok" {
				t.Errorf("%q %v", body, err)
			}
		}()
	}
	wg.Wait()
	if n := pipelined.Load(); n != 0 {
		t.Errorf("%d requests found another behind them on the connection", n)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestSendReplaysWholeBody: a try that finds its reused connection closed
// before any response byte is sent again on a fresh one when its body is
// held whole and the request is idempotent; a streamed body is not.
func TestSendReplaysWholeBody(t *testing.T) {
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Close") != "" && r.Header.Get("X-Seen") == "" {
			// Hang up on reuse: the first request on a connection is
			// answered, the second is not.
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+string(body))
		return r.Header.Get("X-Close") == ""
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	warm := func() {
		resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	warm()
	resp, err := send(t, c, &Request{Headers: headers("POST", "/", "x", "idempotency-key", "k1", "x-close", "1"), Body: []byte("payload")})
	if err == nil {
		t.Fatalf("hung up twice and still answered %d", resp.Status())
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one replay on a fresh connection)", n)
	}
	warm()
	_, err = send(t, c, &Request{Headers: headers("POST", "/", "x", "idempotency-key", "k1", "x-close", "1"), BodyStream: strings.NewReader("payload"), BodyLength: 7})
	if Classify(err) != Reset {
		t.Errorf("streamed body on a connection closed on reuse: %v, want reset", err)
	}
	if n := s.conns.Load(); n != 3 {
		t.Errorf("streamed body replayed: %d connections, want 3", n)
	}
}

// TestSendPerTryTimeout: the context's deadline bounds the try; the
// connection is closed, not reused.
func TestSendPerTryTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		if r.URL.Path == "/slow-body" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
		}
		<-release
		return false
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, &Request{Headers: headers("GET", "/slow-head", "x")}, Pick{})
	if Classify(err) != Timeout {
		t.Errorf("slow head: %v, want timeout", err)
	}
	// Long enough for the head on a busy machine; the body never ends.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	resp, err := c.Send(ctx2, &Request{Headers: headers("GET", "/slow-body", "x")}, Pick{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, resp); Classify(err) != Timeout {
		t.Errorf("slow body: %v, want timeout", err)
	}
	// A cancel (the client went away) ends a try too.
	ctx3, cancel3 := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel3)
	_, err = c.Send(ctx3, &Request{Headers: headers("GET", "/slow-head", "x")}, Pick{})
	if Classify(err) != Canceled {
		t.Errorf("canceled: %v, want canceled", err)
	}
	eventually(t, 2*time.Second, "connections closed", func() bool { return c.limiter.active.Load() == 0 })
}

// TestSendClosedHandle: a Response closed early closes its connection, and
// its handle reads nothing after, not even once the connection's next
// request is answered.
func TestSendClosedHandle(t *testing.T) {
	s := startRawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	c := h1Cluster(t, s.addr, config.Limits{})
	first, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := readAll(t, first); err != nil || body != "hello" {
		t.Fatal(body, err)
	}
	second, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want the first reused", n)
	}
	buf := make([]byte, 8)
	if n, err := first.ReadBody(buf); n != 0 || err != ErrResponseClosed {
		t.Errorf("closed handle read %q %v", buf[:n], err)
	}
	if first.Status() != 0 || first.Trailers() != nil || first.Headers().Len() != 0 {
		t.Error("closed handle still shows the connection's current response")
	}
	first.Close() // harmless, and must not settle the second
	if body, err := readAll(t, second); err != nil || body != "hello" {
		t.Errorf("second: %q %v", body, err)
	}
	// Closing before the end closes the connection.
	third, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
	if err != nil {
		t.Fatal(err)
	}
	third.ReadBody(make([]byte, 2))
	third.Close()
	fourth, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, fourth)
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the half-read one closed)", n)
	}
	if n := c.Status().ActiveRequests; n != 0 {
		t.Errorf("%d requests still active after every Response was closed", n)
	}
}

// TestSendH2C: the h2c cluster answers Send through its adapter, with
// trailers both ways.
func TestSendH2C(t *testing.T) {
	b := startHTTP(t, "h2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("x-proto", r.Proto)
		w.Header().Set("x-trailer", r.Trailer.Get("X-Checksum"))
		w.Write(body)
		w.Header().Set("Grpc-Status", "0")
	}), true)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{b.addr}})
	c := m.Cluster("c")
	tr := headers("x", "/", "", "x-checksum", "abc")
	resp, err := send(t, c, &Request{Headers: headers("POST", "/", "x", "trailer", "x-checksum"), BodyStream: bytes.NewReader([]byte("grpc")), BodyLength: -1, Trailers: tr})
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Headers()
	if resp.Status() != 200 || field(h, ":status") != "200" || field(h, "x-proto") != "HTTP/2.0" || field(h, "x-trailer") != "abc" {
		t.Errorf("status %d proto %q trailer %q", resp.Status(), field(h, "x-proto"), field(h, "x-trailer"))
	}
	body, err := readAll(t, resp)
	if err != nil || body != "grpc" {
		t.Errorf("body %q %v", body, err)
	}
}

// sendAllocs is the allocations of one warm request through c.Send.
func sendAllocs(t *testing.T, c *Cluster) float64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := &Request{Headers: headers("GET", "/", "upstream.test", "user-agent", "bench", "x-request-id", "0123456789")}
	buf := make([]byte, 512)
	for range 10 {
		if err := sendOnce(ctx, c, req, buf); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	allocs := testing.AllocsPerRun(200, func() {
		if e := sendOnce(ctx, c, req, buf); e != nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return allocs
}

// sendOnce is one request over a reused connection, as the allocation
// test and benchmark run it.
func sendOnce(ctx context.Context, c *Cluster, req *Request, buf []byte) error {
	resp, err := c.Send(ctx, req, Pick{})
	if err != nil {
		return err
	}
	for {
		_, err := resp.ReadBody(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			resp.Close()
			return err
		}
	}
	return resp.Close()
}

// TestSendNoAllocs pins the http1 path at zero allocations per request on
// a reused connection, with a context that can be canceled (the router's).
func TestSendNoAllocs(t *testing.T) {
	addr := startCannedServer(t)
	c := h1Cluster(t, addr, config.Limits{})
	allocs := sendAllocs(t, c)
	if allocs != 0 {
		t.Errorf("%v allocations per request on a reused connection, want 0", allocs)
	}
}
