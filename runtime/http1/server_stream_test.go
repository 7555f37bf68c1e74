package http1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// streamFunc is a stream.Handler from a function.
type streamFunc func(s stream.ServerStream)

func (f streamFunc) ServeStream(s stream.ServerStream) { f(s) }

func startStreamServer(t *testing.T, h stream.Handler) (*Server, string) {
	t.Helper()
	return serveLoopback(t, h, nil)
}

// headers is a response head: :status, then name/value pairs.
func headers(status string, kv ...string) *stream.HeaderMap {
	var h stream.HeaderMap
	h.Add(stream.Status, status)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &h
}

func trailers(kv ...string) *stream.HeaderMap {
	var h stream.HeaderMap
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &h
}

// How the native stream frames a response, by the calls the handler
// makes: what a client reads back, and that the connection carries the
// next request (or closes when it must).
func TestStreamResponseFraming(t *testing.T) {
	big := strings.Repeat("x", 20000)
	errs := make(chan error, 16)
	_, addr := startStreamServer(t, streamFunc(func(s stream.ServerStream) {
		path, _ := s.RequestHeaders().Get(stream.Path)
		var err error
		switch string(path) {
		case "/empty": // the head ends the stream
			err = s.WriteHeaders(headers("200", "x-a", "1"), true)
		case "/small":
			s.WriteHeaders(headers("200"), false)
			s.WriteBody([]byte("sm"), false)
			err = s.WriteBody([]byte("all"), true)
		case "/big-one-write": // the whole body with its end: a length, not chunks
			s.WriteHeaders(headers("200"), false)
			err = s.WriteBody([]byte(big), true)
		case "/big-streamed":
			s.WriteHeaders(headers("200"), false)
			s.WriteBody([]byte(big), false)
			err = s.WriteBody(nil, true)
		case "/declared":
			s.WriteHeaders(headers("200", "content-length", "5", "transfer-encoding", "chunked"), false)
			err = s.WriteBody([]byte("12345"), true)
		case "/too-long":
			s.WriteHeaders(headers("200", "content-length", "2"), false)
			if s.WriteBody([]byte("abc"), false) == nil {
				err = errors.New("a body past content-length was taken")
			}
			s.WriteBody([]byte("ab"), true)
		case "/trailers":
			s.WriteHeaders(headers("200", "trailer", "x-sum"), false)
			s.WriteBody([]byte("abc"), false)
			err = s.WriteTrailers(trailers("x-sum", "3", "content-length", "99"))
		case "/late-trailers": // undeclared, body still held: chunked after all
			s.WriteHeaders(headers("200"), false)
			s.WriteBody([]byte("abc"), false)
			err = s.WriteTrailers(trailers("x-sum", "3"))
		case "/trailers-with-length": // dropped: the length framed the body
			s.WriteHeaders(headers("200", "content-length", "3"), false)
			s.WriteBody([]byte("abc"), false)
			err = s.WriteTrailers(trailers("x-sum", "3"))
		case "/head":
			err = s.WriteHeaders(headers("200", "content-length", "1234"), false)
			s.WriteBody([]byte("dropped"), true)
		case "/204":
			err = s.WriteHeaders(headers("204"), true)
		case "/103":
			s.WriteHeaders(headers("103", "link", "</a.css>; rel=preload"), false)
			s.WriteHeaders(headers("200"), false)
			err = s.WriteBody([]byte("final"), true)
		case "/split":
			err = s.WriteHeaders(headers("200", "x-bad", "a\r\nset-cookie: evil=1"), true)
		case "/no-status":
			if s.WriteHeaders(headers("2x0"), true) == nil {
				err = errors.New("a head without a valid :status was taken")
			}
			s.WriteHeaders(headers("200"), true)
		}
		if err != nil {
			errs <- err
		}
	}))
	expectFraming(t, addr, []framingCase{
		{"GET", "/empty", 200, 0, false, "", ""},
		{"GET", "/small", 200, 5, false, "small", ""},
		{"GET", "/big-one-write", 200, int64(len(big)), false, big, ""},
		{"GET", "/big-streamed", 200, -1, true, big, ""},
		{"GET", "/declared", 200, 5, false, "12345", ""},
		{"GET", "/too-long", 200, 2, false, "ab", ""},
		{"GET", "/trailers", 200, -1, true, "abc", "3"},
		{"GET", "/late-trailers", 200, -1, true, "abc", "3"},
		{"GET", "/trailers-with-length", 200, 3, false, "abc", ""},
		{"HEAD", "/head", 200, 1234, false, "", ""},
		{"GET", "/204", 204, 0, false, "", ""},
		{"GET", "/103", 200, 5, false, "final", ""},
		{"GET", "/split", 200, 0, false, "", ""},
		{"GET", "/no-status", 200, 0, false, "", ""},
	})
	// The handler's own checks run before its last write, so they are in
	// errs by the time the last response is read.
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// The end of the stream on HTTP/1.0 and Connection: close from the
// handler: the connection closes after the response; trailers have
// nowhere to go on HTTP/1.0 and are dropped.
func TestStreamConnectionClose(t *testing.T) {
	_, addr := startStreamServer(t, streamFunc(func(s stream.ServerStream) {
		path, _ := s.RequestHeaders().Get(stream.Path)
		switch string(path) {
		case "/close":
			s.WriteHeaders(headers("200", "connection", "close"), false)
			s.WriteBody([]byte("bye"), true)
		case "/stream10":
			s.WriteHeaders(headers("200"), false)
			s.WriteBody([]byte("part1 "), false)
			s.Flush()
			s.WriteBody([]byte("part2"), false)
			s.WriteTrailers(trailers("x-t", "1"))
		}
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET /close HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, body := readResponse(t, br, "GET"); body != "bye" || !resp.Close {
		t.Fatalf("got %q close=%v", body, resp.Close)
	}
	expectClosed(t, br)

	c, br = dial(t, addr)
	io.WriteString(c, "GET /stream10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	raw, err := io.ReadAll(br)
	if err != nil || !bytes.HasSuffix(raw, []byte("\r\n\r\npart1 part2")) || bytes.Contains(raw, []byte("chunked")) {
		t.Fatalf("HTTP/1.0 streamed response %q, %v", raw, err)
	}
}

// The request side: headers as parsed, body with its declared length and
// trailers, 100-continue on the first read, one ConnectionInfo per
// connection with the request's protocol.
func TestStreamRequest(t *testing.T) {
	type seen struct {
		path, body, trailer string
		length              int64
		info                *stream.ConnectionInfo
		proto               string
	}
	got := make(chan seen, 8)
	_, addr := startStreamServer(t, streamFunc(func(s stream.ServerStream) {
		var v seen
		p, _ := s.RequestHeaders().Get(stream.Path)
		v.path, v.length = string(p), s.RequestBodyLength()
		b, err := io.ReadAll(readerFunc(s.ReadBody))
		if err != nil {
			s.Reset(stream.ResetProtocol)
			return
		}
		v.body = string(b)
		if tr := s.RequestTrailers(); tr != nil {
			x, _ := tr.Get("x-sum")
			v.trailer = string(x)
		}
		v.info, v.proto = s.Connection(), s.Connection().Protocol
		got <- v
		s.WriteHeaders(headers("200"), true)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"+
		"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\n"+
		"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	want := []seen{{"/a", "hello", "", 5, nil, "HTTP/1.1"}, {"/b", "abc", "3", -1, nil, "HTTP/1.1"}, {"/c", "", "", 0, nil, "HTTP/1.0"}}
	var info *stream.ConnectionInfo
	for _, w := range want {
		readResponse(t, br, "GET")
		v := <-got
		if info == nil {
			info = v.info
		}
		if v.path != w.path || v.body != w.body || v.trailer != w.trailer || v.length != w.length || v.proto != w.proto || v.info != info {
			t.Fatalf("got %+v, want %+v on the connection's one ConnectionInfo", v, w)
		}
	}
	if info.Scheme != "http" || info.Remote.String() != c.LocalAddr().String() || info.ID == 0 {
		t.Fatalf("connection info %+v", info)
	}

	// 100 Continue goes out at the first read, not before.
	c, br = dial(t, addr)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	if line, err := br.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q %v, want 100 Continue", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	readResponse(t, br, "POST")
	if v := <-got; v.body != "hello" || v.info == info {
		t.Fatalf("got %+v (a second connection has its own info)", v)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// Upgrade: the 101 goes out first, then the handler has the connection
// and the bytes the client sent past the head; the server forgets it.
func TestStreamUpgrade(t *testing.T) {
	s, addr := startStreamServer(t, streamFunc(func(s stream.ServerStream) {
		if _, _, err := s.Upgrade(); err == nil {
			t.Error("Upgrade before a 101 worked")
		}
		s.WriteHeaders(headers("101", "connection", "Upgrade", "upgrade", "echo"), false)
		nc, rest, err := s.Upgrade()
		if err != nil {
			t.Error(err)
			return
		}
		// A reset after the hand-over (a late stream timeout) leaves the
		// connection alone.
		s.Reset(stream.ResetCancel)
		go func() {
			defer nc.Close()
			br := bufio.NewReader(io.MultiReader(bytes.NewReader(rest), nc))
			for range 2 {
				line, _ := br.ReadString('\n')
				io.WriteString(nc, "echo: "+line)
			}
		}()
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly bytes\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" || resp.Header.Get("Connection") != "Upgrade" {
		t.Fatalf("got %v %v", resp, err)
	}
	// The bytes sent with the head, then bytes read from the connection.
	if line, _ := br.ReadString('\n'); line != "echo: early bytes\n" {
		t.Fatalf("got %q", line)
	}
	io.WriteString(c, "late bytes\n")
	if line, _ := br.ReadString('\n'); line != "echo: late bytes\n" {
		t.Fatalf("got %q", line)
	}
	// An upgraded connection is not the server's: Shutdown does not wait.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// Reset: the client gets what was written and then the connection's end,
// the stream's context ends; from another goroutine it ends a write
// blocked on a client that stopped reading.
func TestStreamReset(t *testing.T) {
	ctxEnded := make(chan bool, 1)
	blocked := make(chan error, 1)
	_, addr := startStreamServer(t, streamFunc(func(s stream.ServerStream) {
		path, _ := s.RequestHeaders().Get(stream.Path)
		switch string(path) {
		case "/partial":
			s.WriteHeaders(headers("200", "content-length", "100"), false)
			s.WriteBody([]byte("partial"), false)
			s.Reset(stream.ResetCancel)
			select {
			case <-s.Context().Done():
				ctxEnded <- true
			default:
				ctxEnded <- false
			}
		case "/blocked":
			time.AfterFunc(300*time.Millisecond, func() { s.Reset(stream.ResetInternal) })
			s.WriteHeaders(headers("200"), false)
			chunk := make([]byte, 64<<10)
			for {
				if err := s.WriteBody(chunk, false); err != nil {
					blocked <- err
					return
				}
			}
		}
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET /partial HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil || string(b) != "partial" {
		t.Fatalf("body %q err %v, want the partial body and an error", b, err)
	}
	if !<-ctxEnded {
		t.Fatal("context not ended by Reset")
	}

	c, _ = dial(t, addr)
	io.WriteString(c, "GET /blocked HTTP/1.1\r\nHost: h\r\n\r\n") // and read nothing
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("write ended without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Reset did not end the blocked write")
	}
}

// A handler that returns without answering: the client gets a 500 and the
// connection closes, rather than waiting for nothing.
func TestStreamUnansweredIs500(t *testing.T) {
	_, addr := startStreamServer(t, streamFunc(func(s stream.ServerStream) {}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 500 || !resp.Close {
		t.Fatalf("got %d close=%v", resp.StatusCode, resp.Close)
	}
	expectClosed(t, br)
}

// A keep-alive request and its small response cost the codec no
// allocation: the stream, its header maps and the write buffers are the
// connection's, reused. Through a real socket; the client side reuses its
// buffers, so every allocation counted is the server's.
func TestStreamKeepAliveNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, tc := range []struct{ name, req string }{
		{"GET", typicalRequest},
		{"POST", "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world"},
		{"chunked", "POST /submit HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"trailers", "POST /submit HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{StreamHandler: smallStreamHandler()}
			t.Cleanup(s.Close)
			client, body := keepAliveClient(t, tc.req, func(c net.Conn) { s.ServeConn(c, nil) })
			allocs := testing.AllocsPerRun(200, func() {
				if err := client(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations a request, want 0 (%q)", allocs, body)
			}
		})
	}
}

// smallStreamHandler answers with a small body from a head it keeps,
// reading the request body first: a handler that allocates nothing.
func smallStreamHandler() stream.Handler {
	head := headers("200", "content-type", "text/plain")
	body := []byte("hello from the handler\n")
	var buf [512]byte
	return streamFunc(func(s stream.ServerStream) {
		for {
			if _, err := s.ReadBody(buf[:]); err != nil {
				break
			}
		}
		s.WriteHeaders(head, false)
		s.WriteBody(body, true)
	})
}

// keepAliveClient makes a client connection to a loopback port whose one
// connection serve takes, and returns a function doing one request on it
// (no allocation: fixed buffers, the response's size learnt once) and the
// response.
func keepAliveClient(tb testing.TB, req string, serve func(net.Conn)) (func() error, []byte) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		serve(c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	tb.Cleanup(func() {
		c.Close()
		ln.Close()
		<-done
	})
	r := []byte(req)
	buf := make([]byte, 4096)
	c.Write(r)
	n := 0
	for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
		m, err := c.Read(buf[n:])
		if err != nil {
			tb.Fatal(err)
		}
		n += m
	}
	size := bytes.Index(buf[:n], []byte("\r\n\r\n")) + 4 + len("hello from the handler\n")
	if _, err := io.ReadFull(c, buf[n:size]); err != nil {
		tb.Fatal(err)
	}
	return func() error {
		if _, err := c.Write(r); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf[:size]); err != nil {
			return err
		}
		if !bytes.HasSuffix(buf[:size], []byte("handler\n")) {
			return errors.New("response out of step")
		}
		return nil
	}, buf[:size]
}

// The codec gives a request the connection's :scheme among its
// pseudo-headers, where the connection manager put it before (after
// :authority, before every field), on each request of a connection: the
// proxy no longer adds it, so a missing or misplaced one would reach the
// router, the filters and an HTTP/2 upstream.
func TestRequestScheme(t *testing.T) {
	for _, tc := range []struct {
		name   string
		state  *tls.ConnectionState
		scheme string
	}{
		{"plain", nil, "http"},
		{"tls", &tls.ConnectionState{}, "https"}, // the codec only asks whether there is one
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := make(chan string, 8)
			h := streamFunc(func(s stream.ServerStream) {
				var got []string
				for n, v := range s.RequestHeaders().All() {
					got = append(got, string(n)+"="+string(v))
				}
				seen <- strings.Join(got, " ")
				s.WriteHeaders(headers("200", "content-length", "0"), true)
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := &Server{StreamHandler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
			t.Cleanup(func() { s.Close() })
			acceptEach(t, ln, func(c net.Conn) { go s.ServeConn(c, tc.state) })
			c, br := dial(t, ln.Addr().String())
			sc := ":scheme=" + tc.scheme
			for _, rt := range []struct{ req, want string }{
				{"GET /a HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n", ":method=GET :path=/a :authority=h " + sc + " x-a=1"},
				{"GET /b HTTP/1.1\r\nX-A: 1\r\nHost: h\r\nX-B: 2\r\n\r\n", ":method=GET :path=/b :authority=h " + sc + " x-a=1 x-b=2"},
				{"GET http://o:8/c HTTP/1.1\r\nX-A: 1\r\nHost: h\r\n\r\n", ":method=GET :path=/c :authority=o:8 " + sc + " x-a=1"},
				{"GET /d HTTP/1.0\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n", ":method=GET :path=/d " + sc + " connection=keep-alive x-a=1"},
				{"GET /e HTTP/1.1\r\nHost: h\r\n\r\n", ":method=GET :path=/e :authority=h " + sc},
			} {
				if _, err := io.WriteString(c, rt.req); err != nil {
					t.Fatal(err)
				}
				readResponse(t, br, "GET")
				if got := <-seen; got != rt.want {
					t.Errorf("%q:\n got %s\nwant %s", rt.req, got, rt.want)
				}
			}
		})
	}
}
