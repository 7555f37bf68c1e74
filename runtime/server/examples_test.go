package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/sharedstore/redistest"
)

// exampleConfig reads an example file and points its fixed addresses at
// the test's own servers.
func exampleConfig(t *testing.T, name string, replace map[string]string) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	replace[`address = "127.0.0.1:9901"`] = `address = "127.0.0.1:0"`
	replace[`address = "127.0.0.1:8080"`] = `address = "127.0.0.1:0"`
	for from, to := range replace {
		if !strings.Contains(s, from) {
			t.Fatalf("%s has no %q", name, from)
		}
		s = strings.ReplaceAll(s, from, to)
	}
	return s
}

func hs256(t *testing.T, secret string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(claims)
	signing := head + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestKongMigrationExample(t *testing.T) {
	redisAddr := redistest.Start(t)
	orders := startEcho(t, "order-service", nil)
	users := startEcho(t, "user-service", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sluice-Limit", "sms=1")
		w.Write([]byte("sent"))
	})
	ts := startServer(t, exampleConfig(t, "kong-migration.toml", map[string]string{
		"127.0.0.1:6379": redisAddr,
		// A slow Redis op under -race would be let through (fault
		// tolerant) and spoil the count; the example's 100ms is for users.
		`timeout = "100ms"`: `timeout = "5s"`,
		"127.0.0.1:9001":    orders.addr,
		"127.0.0.1:9002":    users.addr,
	}))
	ordersURL := ts.url("/api/v2/orders/17")
	token := hs256(t, "change-this-shared-secret", map[string]any{"iss": "https://id.example.com", "exp": time.Now().Add(time.Hour).Unix()})

	t.Run("401 without a valid JWT", func(t *testing.T) {
		resp, _ := do(t, mustReq(t, "GET", ordersURL, nil))
		if resp.StatusCode != 401 {
			t.Fatalf("no token: %d", resp.StatusCode)
		}
		expired := hs256(t, "change-this-shared-secret", map[string]any{"iss": "https://id.example.com", "exp": time.Now().Add(-time.Hour).Unix()})
		req := mustReq(t, "GET", ordersURL, nil)
		req.Header.Set("Authorization", "Bearer "+expired)
		if resp, body := do(t, req); resp.StatusCode != 401 || !strings.Contains(body, "expired") {
			t.Fatalf("expired token: %d %s", resp.StatusCode, body)
		}
		forged := hs256(t, "wrong-secret", map[string]any{"iss": "https://id.example.com", "exp": time.Now().Add(time.Hour).Unix()})
		req = mustReq(t, "GET", ordersURL, nil)
		req.Header.Set("Authorization", "Bearer "+forged)
		if resp, _ := do(t, req); resp.StatusCode != 401 {
			t.Fatalf("forged token: %d", resp.StatusCode)
		}
	})

	t.Run("CORS preflight answered for app.example.com", func(t *testing.T) {
		req := mustReq(t, "OPTIONS", ordersURL, nil)
		req.Header.Set("Origin", "https://app.example.com")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, _ := do(t, req)
		if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
		// The route's methods, and no other: a DELETE it allowed would
		// then get 404 from the route.
		if m := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "PUT") || strings.Contains(m, "DELETE") {
			t.Fatalf("allowed methods %q, want the route's GET, POST, PUT", m)
		}
	})

	t.Run("X-Request-Source added, then 429 after 100 in a minute", func(t *testing.T) {
		get := func() (*http.Response, echoReply) {
			req := mustReq(t, "GET", ordersURL, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			return getJSON(t, http.DefaultClient, req)
		}
		// The limit is per calendar minute: keep the 101 requests inside one.
		if now := time.Now(); now.Second() >= 50 {
			time.Sleep(time.Duration(61-now.Second()) * time.Second)
		}
		resp, e := get()
		if resp.StatusCode != 200 {
			t.Fatalf("valid token: %d", resp.StatusCode)
		}
		if got := e.Header["X-Request-Source"]; len(got) != 1 || got[0] != "external" {
			t.Fatalf("upstream saw X-Request-Source %v", got)
		}
		if e.Path != "/api/v2/orders/17" {
			t.Fatalf("strip_path false: upstream saw %q", e.Path)
		}
		for i := 2; i <= 100; i++ {
			if resp, _ := get(); resp.StatusCode != 200 {
				t.Fatalf("request %d of 100: %d", i, resp.StatusCode)
			}
		}
		req := mustReq(t, "GET", ordersURL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, body := do(t, req)
		if resp.StatusCode != 429 || !strings.Contains(body, "API rate limit exceeded") {
			t.Fatalf("request 101: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("key-auth and sms response limit on users", func(t *testing.T) {
		usersURL := ts.url("/api/v2/users/send")
		if resp, _ := do(t, mustReq(t, "POST", usersURL, nil)); resp.StatusCode != 401 {
			t.Fatalf("no key: %d", resp.StatusCode)
		}
		for i := 1; i <= 10; i++ {
			req := mustReq(t, "POST", usersURL, nil)
			req.Header.Set("apikey", "change-me")
			resp, _ := do(t, req)
			if resp.StatusCode != 200 {
				t.Fatalf("sms %d: %d", i, resp.StatusCode)
			}
			if resp.Header.Get("X-Sluice-Limit") != "" {
				t.Fatal("the upstream's usage header reached the client")
			}
		}
		req := mustReq(t, "POST", usersURL, nil)
		req.Header.Set("apikey", "change-me")
		if resp, body := do(t, req); resp.StatusCode != 429 || !strings.Contains(body, "sms") {
			t.Fatalf("11th sms: %d %s", resp.StatusCode, body)
		}
	})
}

// countingEcho is an echo upstream that also counts connections.
// connStats counts an upstream's connections and the most requests one
// connection has carried.
type connStats struct {
	opened, maxRequests atomic.Int32
}

type connRequestsKey struct{}

func countingEcho(t *testing.T, name string, h http.HandlerFunc) (*echoUpstream, *connStats) {
	t.Helper()
	var st connStats
	up := startEcho(t, name, func(w http.ResponseWriter, r *http.Request) {
		if n, ok := r.Context().Value(connRequestsKey{}).(*atomic.Int32); ok {
			v := n.Add(1)
			for m := st.maxRequests.Load(); v > m && !st.maxRequests.CompareAndSwap(m, v); m = st.maxRequests.Load() {
			}
		}
		h(w, r)
	})
	up.srv.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			st.opened.Add(1)
		}
	}
	up.srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connRequestsKey{}, new(atomic.Int32))
	}
	return up, &st
}

func TestIstioCanaryExample(t *testing.T) {
	var v2Fail atomic.Bool
	var v1Calls atomic.Int32
	v1, v1Conns := countingEcho(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		n := v1Calls.Add(1)
		if strings.HasSuffix(r.URL.Path, "/flaky") && n%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/slow") {
			select {
			case <-time.After(15 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		fmt.Fprint(w, "v1")
	})
	v2, _ := countingEcho(t, "v2", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			select {
			case <-time.After(15 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		if v2Fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "v2")
	})
	ts := startServer(t, exampleConfig(t, "istio-canary.toml", map[string]string{
		"127.0.0.1:9001": v1.addr,
		"127.0.0.1:9002": v2.addr,
	}))
	url := ts.url("/api/v2/orders")
	get := func(path string, canary bool) (int, string) {
		req := mustReq(t, "GET", url+path, nil)
		if canary {
			req.Header.Set("X-Canary", "true")
		}
		resp, body := do(t, req)
		return resp.StatusCode, body
	}

	t.Run("x-canary true always reaches v2", func(t *testing.T) {
		for i := 0; i < 100; i++ {
			if code, body := get("/c", true); code != 200 || body != "v2" {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
	})

	t.Run("90/10 split within 3% over 2000 requests", func(t *testing.T) {
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 250; i++ {
					code, body := get("/s", false)
					mu.Lock()
					counts[fmt.Sprint(code, body)]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		share := float64(counts["200v1"]) / 2000
		if counts["200v1"]+counts["200v2"] != 2000 || share < 0.87 || share > 0.93 {
			t.Fatalf("split %v: v1 share %.3f, want 0.90 +- 0.03", counts, share)
		}
	})

	t.Run("connection pool: 10 requests per connection", func(t *testing.T) {
		before := v1Conns.opened.Load()
		for i := 0; i < 50; i++ {
			req := mustReq(t, "GET", url+"/pool", nil)
			req.Header.Set("X-Sluice-Subset", "ignored-client-value")
			do(t, req)
		}
		// About 45 of 50 go to v1, one after another: connections are
		// reused, but none past max_requests_per_connection = 10 (over the
		// whole test, the concurrent split above included).
		if opened := v1Conns.opened.Load() - before; opened > 20 {
			t.Errorf("v1 saw %d new connections for ~45 sequential requests: the pool does not reuse them", opened)
		}
		if m := v1Conns.maxRequests.Load(); m != 10 {
			t.Errorf("the busiest v1 connection carried %d requests; max_requests_per_connection = 10", m)
		}
	})

	t.Run("retries 5xx", func(t *testing.T) {
		v1Calls.Store(0)
		for i := 0; i < 20; i++ {
			code, body := get("/flaky", false)
			if code != 200 {
				t.Fatalf("request %d: %d %q despite 3 retries", i, code, body)
			}
		}
	})

	t.Run("outlier ejection after 3 consecutive 5xx", func(t *testing.T) {
		v2Fail.Store(true)
		defer v2Fail.Store(false)
		get("/e", true) // one request, 1 + 3 retries: 4 consecutive 5xx on v2
		n := ts.Registry().Counter("sluice_upstream_ejections_total", "", "cluster", "order-service").Value()
		if n < 1 {
			t.Fatalf("ejections = %d after 4 consecutive 5xx, want >= 1", n)
		}
	})

	t.Run("10s route timeout", func(t *testing.T) {
		if testing.Short() {
			t.Skip("takes 10 s")
		}
		start := time.Now()
		req := mustReq(t, "GET", url+"/slow", nil)
		resp, _ := do(t, req)
		d := time.Since(start)
		// Per-try timeout 2s x 4 tries with backoff ends first (~8s+),
		// inside the 10s route timeout: either way a 504, never a hang.
		if resp.StatusCode != 504 || d > 11*time.Second {
			t.Fatalf("slow upstream: %d after %v, want 504 within 10s", resp.StatusCode, d)
		}
	})
}
