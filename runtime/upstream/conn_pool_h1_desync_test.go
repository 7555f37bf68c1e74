package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// smuggled is a whole response a hostile upstream sends after its answer.
const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED"

// TestH1NoReuseWithUnreadBytes: a connection with bytes past the end of a
// response is closed, never handed to the next request, whether the bytes
// came with the response or later while it idled; whether the next request
// streams its body (the connection is checked before it is handed out) or
// goes out in one write (checked as it is written).
func TestH1NoReuseWithUnreadBytes(t *testing.T) {
	tests := []struct {
		name, method string
		wire         string // the answer to the first request
		late         string // written once the first response was read
	}{
		{"after content-length body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + smuggled, ""},
		{"after chunked body", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + smuggled, ""},
		{"body on 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n" + smuggled, ""},
		{"body on 304", "GET", "HTTP/1.1 304 Not Modified\r\n\r\n" + smuggled, ""},
		{"body on HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n" + smuggled, ""},
		{"late body on 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", smuggled},
		{"late bytes while idle", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", smuggled},
		{"a single late byte", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "H"},
	}
	for _, api := range []string{"Send", "SendStreamed"} {
		for _, tt := range tests {
			t.Run(api+"/"+tt.name, func(t *testing.T) {
				firstRead := make(chan struct{})
				lateWritten := make(chan struct{})
				s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
					if r.URL.Path == "/attack" {
						io.WriteString(c, tt.wire)
						if tt.late != "" {
							<-firstRead
							io.WriteString(c, tt.late)
							close(lateWritten)
						}
						return true
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nown")
					return true
				})
				c := h1Cluster(t, s.addr, config.Limits{})
				fetch(t, c, api, tt.method, "/attack")
				close(firstRead)
				if tt.late != "" {
					<-lateWritten
					time.Sleep(20 * time.Millisecond) // into the pool's socket
				}
				next := "GET"
				if api == "SendStreamed" {
					next = "POST"
				}
				if body, err := fetch(t, c, api, next, "/next"); err != nil || body != "own" {
					t.Fatalf("next request got %q %v, want its own answer", body, err)
				}
				if n := s.conns.Load(); n != 2 {
					t.Errorf("%d connections, want 2 (the dirty one closed)", n)
				}
			})
		}
	}
}

// fetch sends a request (Send; SendStreamed streams a POST's body) and
// reads the whole answer.
func fetch(t *testing.T, c *Cluster, api, method, path string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := &Request{Headers: headers(method, path, "x")}
	if api == "SendStreamed" && method == "POST" {
		req.BodyStream, req.BodyLength = strings.NewReader("body"), 4
	}
	resp, err := c.Send(ctx, req, Pick{})
	if err != nil {
		return "", err
	}
	return readAll(t, resp)
}

// TestH1FramingDoubtsCloseOrFail: a response whose framing cannot be
// trusted fails (502 for the proxy) and one that is readable but doubtful
// is read, then its connection closed.
func TestH1FramingDoubtsCloseOrFail(t *testing.T) {
	tests := []struct {
		name, method, wire string
		fails              bool
		body               string
	}{
		{"differing content-lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", true, ""},
		{"signed content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", true, ""},
		{"hex content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok", true, ""},
		{"list content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", true, ""},
		{"huge content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok", true, ""},
		{"bad content-length on HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true, ""},
		{"gzip transfer-encoding", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", true, ""},
		{"chunked not last", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n", true, ""},
		{"two transfer-encodings", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true, ""},
		{"bad chunk size", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", true, ""},
		{"overflowing chunk size", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nok\r\n0\r\n\r\n", true, ""},
		{"content-length and chunked", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, "ok"},
		{"204 declaring a body", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n", false, ""},
		{"no body, connection close", "GET", "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", false, ""},
		{"http/1.0 chunked keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, "ok"},
		{"http/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, "ok"},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRawServer(t, canned(tt.wire))
			c := h1Cluster(t, s.addr, config.Limits{})
			for i := 0; i < 2; i++ {
				_, body, err := do(t, c, tt.method, nil)
				if tt.fails {
					if err == nil {
						t.Fatalf("request %d: accepted, body %q", i, body)
					}
					continue
				}
				if err != nil || body != tt.body {
					t.Fatalf("request %d: %q %v, want %q", i, body, err, tt.body)
				}
			}
			if n := s.conns.Load(); n != 2 {
				t.Errorf("%d connections for two requests, want 2 (never reused)", n)
			}
		})
	}
}

// TestH1InterimResponsesCapped: an upstream answering 100 Continue forever
// gets an error after a few, not a request parsing them until its timeout.
func TestH1InterimResponsesCapped(t *testing.T) {
	endless := bytes.Repeat([]byte("HTTP/1.1 100 Continue\r\n\r\n"), 1024)
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		for {
			if _, err := c.Write(endless); err != nil {
				return false
			}
		}
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Send(ctx, &Request{Headers: headers("GET", "/", "x")}, Pick{})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "interim") {
		t.Fatalf("endless 100 Continue: %v (context %v), want the interim cap", err, ctx.Err())
	}

	// A few interim responses are fine.
	few := strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", maxInterimResponses) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	s = startRawServer(t, canned(few))
	if _, body, err := do(t, h1Cluster(t, s.addr, config.Limits{}), "GET", nil); err != nil || body != "ok" {
		t.Errorf("%d interim responses: %q %v", maxInterimResponses, body, err)
	}
}

// TestH1UnsolicitedUpgrade: a 101 to a request that did not ask to upgrade
// is an error, and its connection is closed.
func TestH1UnsolicitedUpgrade(t *testing.T) {
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\n"+smuggled)
		return true
	})
	c := h1Cluster(t, s.addr, config.Limits{})
	for _, h := range [][]string{
		{},
		{"upgrade", "websocket"},     // no Connection: upgrade
		{"connection", "upgrade"},    // no Upgrade
		{"connection", "keep-alive"}, // neither
	} {
		resp, err := send(t, c, &Request{Headers: headers("GET", "/", "x", h...)})
		if err == nil {
			status := resp.Status()
			resp.Close()
			t.Fatalf("headers %v: got %d, want an error", h, status)
		}
	}
	eventually(t, 2*time.Second, "connections closed", func() bool { return c.limiter.active.Load() == 0 })
}

// TestH1NoReuseWithUnreadBytesTLS: over TLS, bytes past a response's end
// can sit in tls.Conn's own buffer rather than ours (a large body read
// straight into the caller's buffer leaves the rest of its record there);
// they keep the connection from being reused too.
func TestH1NoReuseWithUnreadBytesTLS(t *testing.T) {
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	certs := hs.TLS.Certificates
	hs.Close()
	// Full-size records, so the body and the smuggled bytes share one.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certs, DynamicRecordSizingDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("b", 16000)
	s := serveRaw(t, ln, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		if r.URL.Path == "/attack" {
			// The head in a record of its own, then the body and the
			// smuggled bytes in one record.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 16000\r\n\r\n")
			io.WriteString(c, body+smuggled)
			return true
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nown")
		return true
	})
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return tls.Client(raw, &tls.Config{InsecureSkipVerify: true}), nil
	}
	p := newH1Pool(dial, time.Minute, 4, 0)
	defer p.closeAll()
	get := func(path string) string {
		t.Helper()
		st, err := p.send(context.Background(), &Request{Headers: headers("GET", path, "x")}, ln.Addr().String(), 0)
		if err != nil {
			t.Fatal(err)
		}
		resp := st.handle()
		defer resp.Close()
		var got []byte
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.ReadBody(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				return string(got)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := get("/attack"); got != body {
		t.Fatalf("first body: %d bytes", len(got))
	}
	for i := 0; i < 3; i++ {
		if got := get("/next"); got != "own" {
			t.Fatalf("next request %d got %q, want its own answer", i, got)
		}
	}
	// A clean TLS connection is still reused.
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}
