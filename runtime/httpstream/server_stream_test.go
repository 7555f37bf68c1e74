package httpstream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

type handlerFunc func(s stream.ServerStream)

func (f handlerFunc) ServeStream(s stream.ServerStream) { f(s) }

// serve runs h behind net/http on 127.0.0.1 until the test ends.
func serve(t *testing.T, h stream.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ids uint64
	srv := &http.Server{Handler: Handler(h), ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
		ids++
		return WithConnection(ctx, ids)
	}}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// The request arrives as pseudo-headers and lower-case fields, its body
// and trailers through ReadBody and RequestTrailers; the response map's
// fields, body and trailers reach the client.
func TestServerStreamRoundTrip(t *testing.T) {
	addr := serve(t, handlerFunc(func(s stream.ServerStream) {
		var seen strings.Builder
		for name, value := range s.RequestHeaders().All() {
			fmt.Fprintf(&seen, "%s=%s;", name, value)
		}
		body, _ := io.ReadAll(readerFunc(s.ReadBody))
		if tr := s.RequestTrailers(); tr != nil {
			v, _ := tr.Get("x-sum")
			fmt.Fprintf(&seen, "trailer=%s;", v)
		}
		fmt.Fprintf(&seen, "body=%s;conn=%d;%s", body, s.Connection().ID, s.Connection().Protocol)
		var h stream.HeaderMap
		h.Add(stream.Status, "201")
		h.Add("x-answer", "yes")
		h.Add("trailer", "x-done")
		s.WriteHeaders(&h, false)
		s.WriteBody([]byte(seen.String()), false)
		var tr stream.HeaderMap
		tr.Add("x-done", "1")
		s.WriteTrailers(&tr)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "POST /p?q=1 HTTP/1.1\r\nHost: example.test\r\nX-Mixed-Case: v\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	want := ":method=POST;:path=/p?q=1;:authority=example.test;:scheme=http;x-mixed-case=v;trailer=X-Sum;trailer=42;body=abc;conn=1;HTTP/1.1"
	if resp.StatusCode != 201 || resp.Header.Get("X-Answer") != "yes" || string(got) != want || resp.Trailer.Get("X-Done") != "1" {
		t.Fatalf("status %d answer %q trailer %q body\n%s\nwant\n%s", resp.StatusCode, resp.Header.Get("X-Answer"), resp.Trailer.Get("X-Done"), got, want)
	}
}

// Reset closes an HTTP/1.1 connection after what was written.
func TestServerStreamReset(t *testing.T) {
	addr := serve(t, handlerFunc(func(s stream.ServerStream) {
		var h stream.HeaderMap
		h.Add(stream.Status, "200")
		s.WriteHeaders(&h, false)
		s.WriteBody([]byte("partial"), false)
		s.Flush()
		s.Reset(stream.ResetCancel)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	all, err := io.ReadAll(c) // ends only when the server closes
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, all)
	}
	if !strings.Contains(string(all), "partial") || strings.HasSuffix(string(all), "0\r\n\r\n") {
		t.Fatalf("want the partial body and no chunked end, got %q", all)
	}
}

// A 101 is held until Upgrade, which writes it on the taken-over
// connection; bytes the client sent after the head are not lost.
func TestServerStreamUpgrade(t *testing.T) {
	addr := serve(t, handlerFunc(func(s stream.ServerStream) {
		var h stream.HeaderMap
		h.Add(stream.Status, "101")
		h.Add("connection", "Upgrade")
		h.Add("upgrade", "echo")
		s.WriteHeaders(&h, false)
		conn, early, err := s.Upgrade()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		got := make([]byte, 5)
		n := copy(got, early)
		if _, err := io.ReadFull(conn, got[n:]); err != nil {
			t.Error(err)
			return
		}
		conn.Write(append([]byte("echo:"), got...))
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello")
	all, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(all), "HTTP/1.1 101 Switching Protocols\r\n") || !strings.HasSuffix(string(all), "\r\n\r\necho:hello") {
		t.Fatalf("got %q", all)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
