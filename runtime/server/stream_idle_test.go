package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stallUpstream serves the stream idle tests' upstream behaviours and
// reports when each handler returns (its connection, and the proxy's
// upstream slot, are then free).
type stallUpstream struct {
	*echoUpstream
	done chan string
}

func startStallUpstream(t *testing.T) *stallUpstream {
	u := &stallUpstream{done: make(chan string, 16)}
	u.echoUpstream = startEcho(t, "stall", func(w http.ResponseWriter, r *http.Request) {
		defer func() { u.done <- r.URL.Path }()
		switch strings.TrimSuffix(strings.TrimSuffix(r.URL.Path, "/http1"), "/h2c") {
		case "/no-headers":
			<-r.Context().Done()
		case "/endless":
			// Writes until the proxy stops taking bytes for good.
			chunk := []byte(strings.Repeat("x", 32<<10))
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/stall-mid-body":
			w.Header().Set("Content-Length", "100000")
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/upload":
			io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, "got it")
		case "/trickle":
			// Pauses longer than the listener's idle timeout but shorter
			// than the route's.
			for i := 0; i < 4; i++ {
				w.Write([]byte("."))
				w.(http.Flusher).Flush()
				time.Sleep(400 * time.Millisecond)
			}
		}
	})
	return u
}

// waitDone waits (bounded) for the upstream handler of path to return.
func (u *stallUpstream) waitDone(t *testing.T, path string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p := <-u.done:
			if p == path {
				return
			}
		case <-deadline:
			t.Fatalf("the upstream handler of %s still runs: the stream holds its upstream slot", path)
		}
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	up := startStallUpstream(t)
	ts := startServer(t, strings.Replace(baseConfig(`
[[routes]]
name = "patient"
match = { path = "/trickle" }
stream_idle_timeout = "2s"
backends = [ { cluster = "up" } ]

[[routes]]
name = "all"
timeout = "60s"
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`), `protocols = ["http1", "h2c"]`, `protocols = ["http1", "h2c"]
stream_idle_timeout = "200ms"`, 1))
	// Bounded: without the idle timeout these would wait for the 60s
	// route timeout.
	client := &http.Client{Timeout: 10 * time.Second}
	idleCount := func() int64 {
		return ts.Registry().Counter("sluice_http_stream_idle_timeouts_total", "", "route", "all").Value()
	}

	t.Run("an upstream that never answers gets 504", func(t *testing.T) {
		before := idleCount()
		resp, body := getBody(t, client, mustReq(t, "GET", ts.url("/no-headers"), nil))
		if resp != http.StatusGatewayTimeout || body != "stream timeout\n" {
			t.Fatalf("status %d %q, want 504 stream timeout (route timeout is 60s)", resp, body)
		}
		up.waitDone(t, "/no-headers")
		// Counted when the stream ends, which may be just after the
		// client has the response.
		eventually(t, "the idle timeout counted", func() bool { return idleCount() == before+1 })
	})

	t.Run("a client that stops sending its body gets 408", func(t *testing.T) {
		c := dialListener(t, ts)
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
		resp, body := readResponse(t, c)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("status %d %q, want 408", resp.StatusCode, body)
		}
	})

	t.Run("an upstream that stalls mid-body resets the client", func(t *testing.T) {
		// The response head may still sit in sluice's buffer when the
		// stream is reset: either way the client sees the stream cut, not
		// a clean end, and not a wait for the 60s route timeout.
		resp, err := client.Get(ts.url("/stall-mid-body"))
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("status %d, %q and a clean end; want the stream cut (Content-Length 100000)", resp.StatusCode, b)
			}
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the stream hung until the client gave up: %v", err)
		}
		up.waitDone(t, "/stall-mid-body")
	})

	for _, proto := range []string{"http1", "h2c"} {
		t.Run("a client that stops reading frees the upstream ("+proto+")", func(t *testing.T) {
			var resp *http.Response
			var err error
			if proto == "http1" {
				resp, err = (&http.Client{Timeout: 30 * time.Second}).Get(ts.url("/endless/http1"))
			} else {
				resp, err = h2cClient().Get(ts.url("/endless/h2c"))
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// Read nothing: the proxy's writes stall once the client's
			// buffers (and, on h2, its flow-control window) are full.
			up.waitDone(t, "/endless/"+proto)
		})
	}

	t.Run("the route's stream_idle_timeout wins over the listener's", func(t *testing.T) {
		resp, body := do(t, mustReq(t, "GET", ts.url("/trickle"), nil))
		if resp.StatusCode != 200 || body != "...." {
			t.Fatalf("status %d, body %q: the listener's 200ms cut a route whose timeout is 2s", resp.StatusCode, body)
		}
	})
}

func dialListener(t *testing.T, ts *testServer) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.ListenerAddr("public"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readResponse reads a response from c, waiting at most 10 s.
func readResponse(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
