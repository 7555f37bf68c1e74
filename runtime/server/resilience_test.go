package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetriesOn5xxAndConnectFailure(t *testing.T) {
	var calls atomic.Int32
	flaky := startEcho(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok %s", body)
	})
	ts := startServer(t, baseConfig(`
[[routes]]
name = "retry"
match = { path_prefix = "/retry" }
retry = { attempts = 3, per_try_timeout = "2s", on = ["5xx", "reset", "connect-failure"], backoff_base = "1ms" }
backends = [ { cluster = "flaky" } ]

[[routes]]
name = "dead"
match = { path_prefix = "/dead" }
retry = { attempts = 2, on = ["connect-failure"], backoff_base = "1ms" }
backends = [ { cluster = "dead" } ]

[[clusters]]
name = "flaky"
endpoints = ["`+flaky.addr+`"]

[[clusters]]
name = "dead"
endpoints = ["127.0.0.1:1"]
`))
	resp, err := http.Post(ts.url("/retry"), "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok payload" {
		t.Fatalf("got %d %q; want 200 after two retries with the body replayed", resp.StatusCode, b)
	}
	if calls.Load() != 3 {
		t.Fatalf("upstream saw %d tries, want 3", calls.Load())
	}

	resp, err = http.Get(ts.url("/dead"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dead cluster: %d, want 503", resp.StatusCode)
	}
	if got := ts.Registry().Counter("sluice_http_retries_total", "", "route", "dead").Value(); got != 2 {
		t.Fatalf("retries counted for dead route: %d, want 2", got)
	}
}

func TestRetriesGiveUpAndReturnLastStatus(t *testing.T) {
	var calls atomic.Int32
	bad := startEcho(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	})
	ts := startServer(t, baseConfig(`
[[routes]]
name = "r"
retry = { attempts = 2, on = ["gateway-error"], backoff_base = "1ms" }
backends = [ { cluster = "bad" } ]
[[clusters]]
name = "bad"
endpoints = ["`+bad.addr+`"]
`))
	resp, err := http.Get(ts.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 || calls.Load() != 3 {
		t.Fatalf("got %d after %d tries; want 502 after 3", resp.StatusCode, calls.Load())
	}
}

func TestTimeouts(t *testing.T) {
	var calls atomic.Int32
	slow := startEcho(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if strings.HasPrefix(r.URL.Path, "/pertry") && n > 1 {
			w.Write([]byte("fast second try"))
			return
		}
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	ts := startServer(t, baseConfig(`
[[routes]]
name = "pertry"
match = { path_prefix = "/pertry" }
timeout = "5s"
retry = { attempts = 1, per_try_timeout = "1s", on = ["5xx"], backoff_base = "1ms" }
backends = [ { cluster = "slow" } ]

[[routes]]
name = "total"
match = { path_prefix = "/total" }
timeout = "300ms"
retry = { attempts = 0, on = ["5xx"] }
backends = [ { cluster = "slow" } ]

[[routes]]
name = "total-without-idle"
match = { path_prefix = "/noidle" }
timeout = "300ms"
stream_idle_timeout = "0s"
retry = { attempts = 0, on = ["5xx"] }
backends = [ { cluster = "slow" } ]

[[clusters]]
name = "slow"
endpoints = ["`+slow.addr+`"]
`))
	// The stream's one timer ends the route's deadline, with the stream
	// idle timeout on (the listener's default) and off.
	for _, path := range []string{"/total", "/noidle"} {
		start := time.Now()
		resp, err := http.Get(ts.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("%s: route timeout: %d, want 504", path, resp.StatusCode)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%s: route timeout took %v", path, d)
		}
	}

	calls.Store(0)
	resp, err := http.Get(ts.url("/pertry"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "fast second try" {
		t.Fatalf("per-try timeout then retry: %d %q", resp.StatusCode, b)
	}
}

func TestWebSocketUpgradeTunnels(t *testing.T) {
	upAddr := startUpgradeEcho(t)
	ts := startServer(t, baseConfig(`
[[routes]]
name = "ws"
backends = [ { cluster = "ws" } ]
[[clusters]]
name = "ws"
endpoints = ["`+upAddr+`"]
`))
	c, err := net.Dial("tcp", ts.ListenerAddr("public"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	c.Write([]byte("ping-frame"))
	got := make([]byte, len("ping-frame"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping-frame" {
		t.Fatalf("echo through the tunnel: %q %v", got, err)
	}
}

func TestGracefulShutdownUnderLoad(t *testing.T) {
	arrived := make(chan struct{}, 64)
	up := startEcho(t, "slowish", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		time.Sleep(100 * time.Millisecond)
		w.Write([]byte("done"))
	})
	ts := startServer(t, baseConfig(`
[[routes]]
name = "r"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	url := ts.url("/")
	// Requests in flight when the drain starts must all complete.
	var wg sync.WaitGroup
	var ok, failed atomic.Int32
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get(url)
			if err != nil {
				failed.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(b) == "done" {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		}()
	}
	for i := 0; i < 32; i++ {
		<-arrived // in flight: the upstream has it, the client waits
	}
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- ts.Shutdown(t.Context()) }()
	wg.Wait()
	if err := <-shutdownErr; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of 32 in-flight requests failed during the drain", failed.Load())
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("the listener still accepts after shutdown")
	}
}
