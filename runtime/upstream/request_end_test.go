package upstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// inFlight is the cluster's requests in flight and its only endpoint's
// count (least_request's).
func inFlight(c *Cluster) (cluster, endpoint int64) {
	st := c.Status()
	return st.ActiveRequests, st.Endpoints[0].ActiveRequests
}

// TestRequestEndsAtResponseEnd: a request stops counting against
// max_requests and its endpoint's active count when its response is
// complete (the body's end read, or a response without a body), before
// the Response is closed, as Envoy's upstream request ends at the
// response's end; its connection slot is held until Close. So with
// max_requests = 1 a second request sent as soon as the first body has
// ended goes through, and the books balance once both are closed.
func TestRequestEndsAtResponseEnd(t *testing.T) {
	body := strings.Repeat("b", 3000)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Header().Set("Trailer", "x-t")
			for i := 0; i < 3; i++ {
				io.WriteString(w, body[:1000])
				w.(http.Flusher).Flush()
			}
			w.Header().Set("x-t", "end")
		case "/none":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("content-length", "3000")
			io.WriteString(w, body)
		}
	})
	cert, caFile := testCert(t)
	for _, protocol := range []string{"http1", "h2c", "h3"} {
		var b backend
		var tlsCfg *config.UpstreamTLS
		if protocol == "h3" {
			b, tlsCfg = startH3(t, "a", h, cert), &config.UpstreamTLS{CA: caFile}
		} else {
			b = startHTTP(t, "a", h, protocol == "h2c")
		}
		m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: protocol, Endpoints: addrs(b), TLS: tlsCfg,
			Limits: config.Limits{MaxRequests: 1}})
		c := m.Cluster("c")
		for _, tc := range []struct{ method, path string }{
			{"GET", "/length"}, {"GET", "/chunked"}, {"GET", "/none"}, {"HEAD", "/length"},
		} {
			t.Run(protocol+" "+tc.method+" "+tc.path, func(t *testing.T) {
				first, err := send(t, c, &Request{Headers: headers(tc.method, tc.path, "x")})
				if err != nil {
					t.Fatal(err)
				}
				defer first.Close()
				if first.BodyLength() != 0 {
					if n, e := inFlight(c); n != 1 || e != 1 {
						t.Fatalf("in flight before the body: cluster %d endpoint %d, want 1 and 1", n, e)
					}
				}
				got, buf := 0, make([]byte, 1000)
				for {
					n, err := first.ReadBody(buf)
					got += n
					if protocol == "http1" && tc.path == "/length" && tc.method == "GET" && got == len(body) && err == nil {
						t.Fatal("the last bytes of a body of known length came without io.EOF")
					}
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if n, e := inFlight(c); n != 0 || e != 0 {
					t.Fatalf("in flight at the body's end: cluster %d endpoint %d, want 0 (least_request would see a finished request)", n, e)
				}
				if protocol == "http1" && c.slots.len() != 1 {
					t.Errorf("%d connection slots held before Close, want 1 (the connection is not settled yet)", c.slots.len())
				}
				// max_requests = 1: the next request is not an overflow.
				second, err := send(t, c, &Request{Headers: headers(tc.method, tc.path, "x")})
				if err != nil {
					t.Fatalf("next request before the first Response is closed: %v", err)
				}
				io.Copy(io.Discard, second.Body())
				second.Close()
				first.Close()
				if n, e := inFlight(c); n != 0 || e != 0 || c.slots.len() != 0 || c.open.Load() != 0 {
					t.Errorf("after Close: in flight %d/%d, slots %d, open tries %d; want all 0", n, e, c.slots.len(), c.open.Load())
				}
			})
		}
	}
}

// TestRequestEndsOnceWhateverEndsIt: every way a try ends (a body cut
// short, a read error then Close, the context firing mid-body, Close
// racing a blocked read, an early Close, an upgrade) leaves the books
// balanced: the request counted out once, never twice.
func TestRequestEndsOnceWhateverEndsIt(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startRawServer(t, func(r *http.Request, c net.Conn, br *bufio.Reader) bool {
		switch r.URL.Path {
		case "/cut":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
			return false
		case "/stall":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			return false
		case "/ws":
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			io.Copy(io.Discard, br)
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
		return true
	})
	c := h1Cluster(t, s.addr, config.Limits{MaxRequests: 1})
	balanced := func(t *testing.T, what string) {
		t.Helper()
		if n, e := inFlight(c); n != 0 || e != 0 || c.slots.len() != 0 || c.open.Load() != 0 {
			t.Fatalf("%s: in flight %d/%d, slots %d, open tries %d; want all 0", what, n, e, c.slots.len(), c.open.Load())
		}
		// And the next request goes through (a count that went below
		// zero would let two through; one held would overflow).
		if body, err := readAll(t, mustSend(t, c, "/")); err != nil || body != "hello" {
			t.Fatalf("%s: next request: %q %v", what, body, err)
		}
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"cut mid-body", func(t *testing.T) {
			r := mustSend(t, c, "/cut")
			if _, err := io.ReadAll(r.Body()); err == nil {
				t.Fatal("a body cut short read without error")
			}
			if n, _ := inFlight(c); n != 0 {
				t.Fatalf("in flight after the read error: %d", n)
			}
			r.ReadBody(make([]byte, 4)) // the sticky error again
			r.Close()
			r.Close()
		}},
		{"deadline mid-body", func(t *testing.T) {
			// Long enough for the head on a busy machine; the body stalls.
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			r, err := c.Send(ctx, &Request{Headers: headers("GET", "/stall", "x")}, Pick{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(r.Body()); err == nil {
				t.Fatal("a stalled body read without error past its deadline")
			}
			r.Close()
		}},
		{"close racing a blocked read", func(t *testing.T) {
			r := mustSend(t, c, "/stall")
			done := make(chan struct{})
			go func() {
				defer close(done)
				io.ReadAll(r.Body())
			}()
			time.Sleep(5 * time.Millisecond)
			r.Close()
			<-done
		}},
		{"closed before the end", func(t *testing.T) {
			r := mustSend(t, c, "/")
			r.ReadBody(make([]byte, 2))
			r.Close()
		}},
		{"upgrade", func(t *testing.T) {
			r, err := send(t, c, &Request{Headers: headers("GET", "/ws", "x", "connection", "Upgrade", "upgrade", "websocket")})
			if err != nil {
				t.Fatal(err)
			}
			r.ReadBody(make([]byte, 1)) // a 101 has no body: io.EOF, and still in flight
			rw, err := r.Upgrade()
			if err != nil {
				t.Fatal(err)
			}
			if n, e := inFlight(c); n != 1 || e != 1 {
				t.Fatalf("upgraded stream in flight %d/%d, want 1/1", n, e)
			}
			rw.Close()
			rw.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			balanced(t, tc.name)
		})
	}
}

func mustSend(t *testing.T, c *Cluster, path string) Response {
	t.Helper()
	r, err := send(t, c, &Request{Headers: headers("GET", path, "x")})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
