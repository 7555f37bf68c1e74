package http1

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// A request without a body keeps the wait's read deadline while it is
// served (the next wait often reuses it): a request that outlives that
// deadline must still not be taken for a client gone away when the
// connection is watched.
func TestServerSlowRequestOutlivesWaitDeadline(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			io.WriteString(w, "canceled")
		case <-time.After(watchDelay + 400*time.Millisecond):
			io.WriteString(w, "served")
		}
	}), func(s *Server) {
		// Well under the handler's time, and over a busy machine's pause
		// between a client's dial, or its last response, and its request.
		s.ReadHeaderTimeout, s.IdleTimeout = 300*time.Millisecond, 300*time.Millisecond
	})
	c, br := dial(t, addr)
	for i := 0; i < 2; i++ { // a new connection's first request, then a kept-alive one
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, body := readResponse(t, br, "GET"); body != "served" {
			t.Fatalf("request %d: got %q, want served", i, body)
		}
	}
	expectClosed(t, br) // the idle timeout still applies after
}

// The idle deadline kept from request to request is renewed: a client
// whose requests come well within the idle timeout of each other is
// served for longer than the timeout.
func TestServerIdleDeadlineRenewed(t *testing.T) {
	const idle = 600 * time.Millisecond
	_, addr := startServer(t, echo, func(s *Server) { s.ReadHeaderTimeout, s.IdleTimeout = idle, idle })
	c, br := dial(t, addr)
	for i := 0; i < 7; i++ { // 1.2 s in all, each a third of the timeout after the last
		if i > 0 {
			time.Sleep(idle / 3)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponse(t, br, "GET")
	}
}
