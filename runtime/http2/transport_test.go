package http2

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// client is x/net's HTTP/2 client for ts: h2c with prior knowledge, or
// TLS with ALPN h2.
func client(t testing.TB, useTLS bool) *http.Client {
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	if !useTLS {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// serve starts a server for h over TLS or h2c, and x/net's client for it
// with the base URL.
func serve(t *testing.T, h stream.Handler, useTLS bool) (*testServer, *http.Client, string) {
	var conf *tls.Config
	if useTLS {
		conf = testTLSConfig(t)
	}
	ts := startServer(t, &Server{}, h, conf)
	return ts, client(t, useTLS), scheme(useTLS) + "://" + ts.addr()
}

func scheme(useTLS bool) string {
	if useTLS {
		return "https"
	}
	return "http"
}

// TestRoundTrips: x/net's client gets its answers over h2c and TLS: a
// GET, a 3 MiB upload echoed back (past both windows, so flow control
// works both ways), request trailers echoed as response trailers, and 50
// concurrent requests on one connection.
func TestRoundTrips(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(scheme(useTLS), func(t *testing.T) {
			_, c, base := serve(t, echo, useTLS)

			resp, err := c.Get(base + "/hello")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "hello" || resp.Header.Get("content-type") != "text/plain" {
				t.Fatalf("GET: %d %q %v", resp.StatusCode, b, resp.Header)
			}

			big := make([]byte, 3<<20)
			rand.Read(big)
			resp, err = c.Post(base+"/echo", "application/octet-stream", bytes.NewReader(big))
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(b, big) {
				t.Fatalf("echo: got %d bytes, want the %d sent", len(b), len(big))
			}

			req, _ := http.NewRequest("POST", base+"/trailers", io.NopCloser(strings.NewReader("body")))
			req.Trailer = http.Header{"X-Checksum": {"abc"}}
			resp, err = c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "body" || resp.Trailer.Get("x-checksum") != "abc" {
				t.Fatalf("trailers: body %q, trailers %v", b, resp.Trailer)
			}

			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for i := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					want := fmt.Sprintf("request %d", i)
					resp, err := c.Post(base+"/", "text/plain", strings.NewReader(want))
					if err != nil {
						errs <- err
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(b) != want {
						errs <- fmt.Errorf("got %q, want %q", b, want)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestStreamView: what a handler sees of a request: pseudo-headers and
// fields in one map, the declared body length (0 without a body, the
// content-length, -1 when unknown), and the connection.
func TestStreamView(t *testing.T) {
	type view struct {
		method, path, authority, scheme, custom string
		bodyLen                                 int64
		info                                    stream.ConnectionInfo
	}
	seen := make(chan view, 1)
	h := handlerFunc(func(s stream.ServerStream) {
		rh := s.RequestHeaders()
		get := func(n string) string { v, _ := rh.Get(n); return string(v) }
		seen <- view{get(":method"), get(":path"), get(":authority"), get(":scheme"), get("x-custom"), s.RequestBodyLength(), *s.Connection()}
		io.Copy(io.Discard, readerOf(s))
		var resp stream.HeaderMap
		resp.Add(":status", "204")
		s.WriteHeaders(&resp, true)
	})
	for _, useTLS := range []bool{false, true} {
		t.Run(scheme(useTLS), func(t *testing.T) {
			ts, c, base := serve(t, h, useTLS)
			for _, tc := range []struct {
				method  string
				body    io.Reader
				bodyLen int64
			}{
				{"GET", nil, 0},
				{"PUT", strings.NewReader("12345"), 5},
				{"POST", io.MultiReader(strings.NewReader("unknown length")), -1},
			} {
				req, _ := http.NewRequest(tc.method, base+"/p?q=1", tc.body)
				req.Header.Set("X-Custom", "yes")
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				v := <-seen
				if v.method != tc.method || v.path != "/p?q=1" || v.authority != ts.addr() || v.scheme != scheme(useTLS) || v.custom != "yes" || v.bodyLen != tc.bodyLen {
					t.Errorf("%s: handler saw %+v", tc.method, v)
				}
				if v.info.Protocol != "HTTP/2" || v.info.Scheme != scheme(useTLS) || (v.info.TLS != nil) != useTLS || v.info.Remote == nil {
					t.Errorf("connection info %+v", v.info)
				}
			}
		})
	}
}

// readerOf reads a stream's request body as an io.Reader.
func readerOf(s stream.ServerStream) io.Reader { return bodyReader{s} }

type bodyReader struct{ s stream.ServerStream }

func (r bodyReader) Read(p []byte) (int, error) { return r.s.ReadBody(p) }

// TestConnInfoHook: a listener's ConnInfo describes the connection its
// streams see.
func TestConnInfoHook(t *testing.T) {
	ids := make(chan uint64, 1)
	srv := &Server{ConnInfo: func(c net.Conn) *stream.ConnectionInfo {
		return &stream.ConnectionInfo{ID: 42, Protocol: "HTTP/2", Scheme: "http", Remote: c.RemoteAddr(), Local: c.LocalAddr()}
	}}
	ts := startServer(t, srv, handlerFunc(func(s stream.ServerStream) {
		ids <- s.Connection().ID
		okHandler(s)
	}), nil)
	r := dialRaw(t, ts.addr())
	r.request(1, true, "/")
	r.expectStatus(1, "200")
	if id := <-ids; id != 42 {
		t.Errorf("connection id %d", id)
	}
}
