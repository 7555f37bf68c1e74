package upstream

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/http2"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// startScriptedH2 is an h2c server that sends settings, answers every
// request's HEADERS with answer (nil: none) on every connection, and
// acknowledges SETTINGS and PINGs; conns counts the connections.
func startScriptedH2(t *testing.T, answer func(fr *xhttp2.Framer, c net.Conn, id uint32), settings ...xhttp2.Setting) (addr string, conns func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var open []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				pre := make([]byte, len(xhttp2.ClientPreface))
				if _, err := io.ReadFull(c, pre); err != nil {
					return
				}
				fr := xhttp2.NewFramer(c, c)
				fr.WriteSettings(settings...)
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *xhttp2.SettingsFrame:
						if !f.IsAck() {
							fr.WriteSettingsAck()
						}
					case *xhttp2.PingFrame:
						if !f.IsAck() {
							fr.WritePing(true, f.Data)
						}
					case *xhttp2.HeadersFrame:
						if answer != nil {
							answer(fr, c, f.StreamID)
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return len(open) }
}

func hpackBlock(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

// TestH2FailuresClassified: an HTTP/2 upstream that hangs up on a stream
// or answers it with a malformed head is a reset for the retry policy and
// outlier detection (RST_STREAM codes and GOAWAY: TestClassifyH2StreamErrors).
func TestH2FailuresClassified(t *testing.T) {
	tests := []struct {
		name   string
		answer func(fr *xhttp2.Framer, c net.Conn, id uint32)
		want   Failure
	}{
		{"hang-up", func(fr *xhttp2.Framer, c net.Conn, id uint32) {
			c.Close()
		}, Reset},
		{"malformed response", func(fr *xhttp2.Framer, c net.Conn, id uint32) {
			fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: hpackBlock("x-no-status", "1"), EndHeaders: true, EndStream: true})
		}, Reset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := startScriptedH2(t, tt.answer)
			m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{addr}})
			_, err := send(t, m.Cluster("c"), &Request{Headers: headers("POST", "/", "x"), Body: []byte("payload")})
			if f := Classify(err); f != tt.want {
				t.Fatalf("err %v classified %v, want %v", err, f, tt.want)
			}
		})
	}
}

// TestH2TrailersOnlyAndStreamedTrailers: a gRPC error as one HEADERS
// frame with END_STREAM (trailers-only: grpc-status in the head) and a
// response whose trailers follow an empty body both reach the caller,
// with a request body held whole and streamed.
func TestH2TrailersOnlyAndStreamedTrailers(t *testing.T) {
	addr, _ := startScriptedH2(t, func(fr *xhttp2.Framer, c net.Conn, id uint32) {
		if id == 1 || id == 5 {
			fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: hpackBlock(":status", "200", "content-type", "application/grpc", "grpc-status", "14"), EndHeaders: true, EndStream: true})
			return
		}
		fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: hpackBlock(":status", "200", "content-type", "application/grpc"), EndHeaders: true})
		fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: hpackBlock("grpc-status", "0", "grpc-message", "ok"), EndHeaders: true, EndStream: true})
	})
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{addr}})
	c := m.Cluster("c")
	resp, err := send(t, c, &Request{Headers: headers("POST", "/svc/Method", "x", "content-type", "application/grpc", "te", "trailers"), Body: []byte{0, 0, 0, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if field(resp.Headers(), "grpc-status") != "14" || resp.BodyLength() != 0 {
		t.Fatalf("trailers-only: head %v, body length %d", resp.Headers(), resp.BodyLength())
	}
	resp.Close()
	resp, err = send(t, c, &Request{Headers: headers("POST", "/svc/Method", "x"), Body: []byte{0, 0, 0, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := readAllKeep(resp); err != nil || body != "" || field(resp.Trailers(), "grpc-status") != "0" {
		t.Fatalf("trailers after an empty body: %q %v %v", body, err, resp.Trailers())
	}
	resp.Close()

	// The same with a streamed request body.
	for _, want := range []string{"14", "0"} {
		resp, err := send(t, c, &Request{Headers: headers("POST", "/svc/Method", "x"), BodyStream: bytes.NewReader([]byte{0, 0, 0, 0, 0}), BodyLength: 5})
		if err != nil {
			t.Fatal(err)
		}
		readAllKeep(resp)
		got := field(resp.Headers(), "grpc-status")
		if tr := resp.Trailers(); tr != nil {
			got += field(tr, "grpc-status")
		}
		resp.Close()
		if got != want {
			t.Fatalf("streamed body: grpc-status %q, want %q", got, want)
		}
	}
}

func readAllKeep(r Response) (string, error) {
	var out []byte
	buf := make([]byte, 64)
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

// TestH2ClosedResponseWhileReading: Close from another goroutine while a
// ReadBody waits ends that read, and later requests on the connection are
// unaffected (the abandoned stream is not reused under the reader).
func TestH2ClosedResponseWhileReading(t *testing.T) {
	addr, _ := startScriptedH2(t, func(fr *xhttp2.Framer, c net.Conn, id uint32) {
		fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: hpackBlock(":status", "200"), EndHeaders: true})
		if id > 1 {
			fr.WriteData(id, true, []byte("second"))
		}
	})
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{addr}})
	c := m.Cluster("c")
	resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x")})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := resp.ReadBody(make([]byte, 10))
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	resp.Close()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("read on a closed response succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the read")
	}
	resp, err = send(t, c, &Request{Headers: headers("GET", "/", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := readAll(t, resp); err != nil || body != "second" {
		t.Fatalf("next request: %q %v", body, err)
	}
}

// BenchmarkClientH2C is one h2c request through Cluster.Send and back,
// on a warm connection to our own HTTP/2 server; allocations count both
// sides (4 a request: the client's is the HEADERS frame x/net's Framer
// parses, the server's that, its stream and the x-request-id value, a
// literal never indexed since such values are new on every request).
func BenchmarkClientH2C(b *testing.B) {
	addr := startCodecServer(b)
	m, err := NewManager([]config.Cluster{{Name: "c", Protocol: "h2c", Endpoints: []string{addr}}}, stats.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c := m.Cluster("c")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := &Request{Headers: headers("GET", "/", "upstream.test", "user-agent", "bench", "x-request-id", "0123456789")}
	buf := make([]byte, 512)
	if err := sendOnce(ctx, c, req, buf); err != nil {
		b.Fatal(err)
	}
	b.Run("cluster_send", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := sendOnce(ctx, c, req, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestH2SendAllocs pins Send's allocations on a warm h2c connection (both
// sides: our server's are part of the count).
func TestH2SendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	addr := startCodecServer(t)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{addr}})
	allocs := sendAllocs(t, m.Cluster("c"))
	if allocs > 4 {
		t.Errorf("%v allocations per h2c request, client and server, want at most 4", allocs)
	}
	t.Logf("%v allocations per h2c request, client and server", allocs)
}

// TestH2StreamedBodyAllocs pins a request with a streamed body (a gRPC
// call's, as the proxy forwards one) on a warm h2c connection, both
// sides: the HEADERS frames x/net's Framer parses on each side, the
// server's stream and the goroutine that writes the body; nothing for
// the copy itself.
func TestH2StreamedBodyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	addr := startCodecServer(t)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{addr}})
	c := m.Cluster("c")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msg := []byte("\x00\x00\x00\x00\x05hello")
	body := bytes.NewReader(msg)
	req := &Request{Headers: headers("POST", "/grpc.testing.TestService/UnaryCall", "upstream.test", "content-type", "application/grpc", "te", "trailers"), BodyStream: body, BodyLength: -1}
	buf := make([]byte, 512)
	one := func() {
		body.Reset(msg)
		if err := sendOnce(ctx, c, req, buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		one()
	}
	if n := testing.AllocsPerRun(200, one); n > 4 {
		t.Errorf("%v allocations per h2c request with a streamed body, client and server, want at most 4", n)
	}
}

var codecOK = func() *stream.HeaderMap {
	var h stream.HeaderMap
	h.Add(stream.Status, "200")
	h.Add("content-type", "text/plain")
	return &h
}()

var codecHello = []byte("hello")

type okStreamHandler struct{}

func (okStreamHandler) ServeStream(s stream.ServerStream) {
	if s.WriteHeaders(codecOK, false) == nil {
		s.WriteBody(codecHello, true)
	}
}

// startCodecServer is runtime/http2's server (h2c) answering "hello".
func startCodecServer(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http2.Server{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(c, okStreamHandler{})
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		srv.Shutdown(ctx)
		cancel()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestH2EarlyAnswerClosesBlockedBody: an upstream that answers before the
// request body ends (the client has not sent it all) leaves a body read
// blocked; closing the response closes the body, so the writer goroutine
// ends with the request.
func TestH2EarlyAnswerClosesBlockedBody(t *testing.T) {
	addr, _ := startScriptedH2(t, func(fr *xhttp2.Framer, c net.Conn, id uint32) {
		fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: hpackBlock(":status", "413"), EndHeaders: true, EndStream: true})
	})
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{addr}})
	pr, pw := io.Pipe()
	defer pw.Close()
	resp, err := send(t, m.Cluster("c"), &Request{Headers: headers("POST", "/", "x"), BodyStream: pr, BodyLength: -1})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status() != 413 {
		t.Fatalf("status %d", resp.Status())
	}
	resp.Close()
	// The writer's read of the pipe fails once the body is closed, so a
	// write on the other end does too.
	done := make(chan error, 1)
	go func() {
		_, err := pw.Write([]byte("more"))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the request body was read after the response closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request body not closed with the response")
	}
}

// TestH2PeerAllowsNoStreams: a peer whose SETTINGS allow no stream at all
// fails the request after a few connections instead of being dialed
// without end.
func TestH2PeerAllowsNoStreams(t *testing.T) {
	addr, conns := startScriptedH2(t, nil, xhttp2.Setting{ID: xhttp2.SettingMaxConcurrentStreams, Val: 0})
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{addr}})
	_, err := send(t, m.Cluster("c"), &Request{Headers: headers("GET", "/", "x")})
	if err == nil || Classify(err) == Timeout {
		t.Fatalf("err %v (%v), want a prompt failure", err, Classify(err))
	}
	if n := conns(); n > 5 {
		t.Fatalf("%d connections dialed", n)
	}
}

// TestH2ManyWaitersOnOneStreamPeers: 16 requests at once to a peer that
// allows one stream per connection, all held until every one arrived:
// each waiter gets a connection of its own in the end, however often
// another took the one just dialed.
func TestH2ManyWaitersOnOneStreamPeers(t *testing.T) {
	const n = 16
	g := &gate{arrived: make(chan struct{}, n), release: make(chan struct{})}
	srv := httptest.NewServer(h2c.NewHandler(g, &xhttp2.Server{MaxConcurrentStreams: 1}))
	t.Cleanup(srv.Close)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{srv.Listener.Addr().String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var results []<-chan error
	for range n {
		results = append(results, startTry(m.Cluster("c"), ctx))
	}
	for range n {
		select {
		case <-g.arrived:
		case <-ctx.Done():
			t.Fatal("not every request reached the server")
		}
	}
	close(g.release)
	for _, r := range results {
		if err := <-r; err != nil {
			t.Error(err)
		}
	}
}

// TestH2RefusesUnsafeFields: a request field whose name or value could end
// or split a field fails the try as Other, and nothing reaches the
// upstream (the HPACK state is not touched either: the next request is
// served).
func TestH2RefusesUnsafeFields(t *testing.T) {
	var mu sync.Mutex
	seen := 0
	b := startHTTP(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		mu.Unlock()
		io.WriteString(w, "ok")
	}), true)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: "h2c", Endpoints: []string{b.addr}})
	c := m.Cluster("c")
	for _, kv := range [][2]string{{"x-a", "v\r\nx-injected: 1"}, {"x-a", "v\x00"}, {"bad name", "v"}, {"x-a\n", "v"}} {
		_, err := send(t, c, &Request{Headers: headers("GET", "/", "x", kv[0], kv[1])})
		if Classify(err) != Other {
			t.Fatalf("%q: %q: err %v classified %v, want other", kv[0], kv[1], err, Classify(err))
		}
	}
	mu.Lock()
	n := seen
	mu.Unlock()
	if n != 0 {
		t.Fatalf("%d unsafe requests reached the upstream", n)
	}
	resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x", "x-a", "fine")})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := readAll(t, resp); err != nil || body != "ok" {
		t.Fatalf("next request: %q %v", body, err)
	}
}
