package server

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shadowCopy is what a shadow upstream received.
type shadowCopy struct {
	method, path, host, body string
	header                   http.Header
}

// startShadow is an upstream that reports each request it gets on the
// returned channel, then waits for release (nil: answers at once) before
// answering, as a slow shadow would.
func startShadow(t testing.TB, release <-chan struct{}) (*echoUpstream, <-chan shadowCopy) {
	t.Helper()
	got := make(chan shadowCopy, 64)
	up := startEcho(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- shadowCopy{r.Method, r.URL.RequestURI(), r.Host, string(b), r.Header.Clone()}:
		default:
		}
		if release != nil {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusTeapot)
	})
	return up, got
}

// metricValue sums the samples of name whose labels contain every one of
// labels (as `key="value"`).
func metricValue(t testing.TB, ts *testServer, name string, labels ...string) int64 {
	t.Helper()
	var buf bytes.Buffer
	ts.Registry().WritePrometheus(&buf)
	var sum int64
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += int64(n)
	}
	return sum
}

// waitMetric waits until metricValue reaches want.
func waitMetric(t testing.TB, ts *testServer, want int64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := metricValue(t, ts, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %d, want %d", name, labels, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nextCopy(t testing.TB, ch <-chan shadowCopy) shadowCopy {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the shadow got no copy")
	}
	return shadowCopy{}
}

func noCopy(t testing.TB, ch <-chan shadowCopy) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("the shadow got an unexpected copy: %+v", c)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestMirrorCopiesRequests: a mirrored route sends the shadow a copy of
// each request (method, path, headers, body) with "-shadow" on the host,
// and the client gets the main upstream's answer; a body past the
// listener's buffer is not mirrored (counted as dropped); a route at 0%
// mirrors nothing.
func TestMirrorCopiesRequests(t *testing.T) {
	main := startEcho(t, "main", nil)
	shadow, copies := startShadow(t, nil)
	ts := startServer(t, fmt.Sprintf(`
[admin]
address = "127.0.0.1:0"
[server]
watch_config = false
drain_timeout = "5s"

[[listeners]]
name = "public"
address = "127.0.0.1:0"
protocols = ["http1", "h2c"]
max_request_body_buffer = "1KiB"

[[routes]]
name = "never"
match = { path_prefix = "/never" }
mirror = "shadow"
mirror_percentage = 0
backends = [ { cluster = "main" } ]

[[routes]]
name = "orders"
mirror = "shadow"
backends = [ { cluster = "main" } ]

[[clusters]]
name = "main"
endpoints = [%q]

[[clusters]]
name = "shadow"
endpoints = [%q]
`, main.addr, shadow.addr))
	c := &http.Client{Timeout: 10 * time.Second}

	for _, cl := range []struct {
		name string
		c    *http.Client
	}{{"http1", c}, {"h2c", h2cClient()}} {
		t.Run(cl.name, func(t *testing.T) {
			req := mustReq(t, "POST", ts.url("/orders/7?x=1"), strings.NewReader("hello shadow"))
			req.Host = "orders.example:8080"
			req.Header.Set("X-Custom", "kept")
			resp, e := getJSON(t, cl.c, req)
			if resp.StatusCode != 200 || e.Name != "main" || e.Body != "hello shadow" || e.Host != "orders.example:8080" {
				t.Fatalf("client got %d %+v", resp.StatusCode, e)
			}
			got := nextCopy(t, copies)
			if got.method != "POST" || got.path != "/orders/7?x=1" || got.host != "orders.example-shadow:8080" || got.body != "hello shadow" || got.header.Get("X-Custom") != "kept" {
				t.Fatalf("shadow got %+v", got)
			}
			if got.header.Get("X-Request-Id") != e.Header["X-Request-Id"][0] {
				t.Errorf("request id %q, main saw %q", got.header.Get("X-Request-Id"), e.Header["X-Request-Id"])
			}
		})
	}
	// Without a body the copy leaves at once.
	_, e := get(t, c, ts.url("/orders"), map[string]string{"Host": "api"})
	if e.Name != "main" {
		t.Fatalf("client got %+v", e)
	}
	if got := nextCopy(t, copies); got.method != "GET" || got.host != "api-shadow" || got.body != "" {
		t.Fatalf("shadow got %+v", got)
	}
	// A body the buffer cannot hold goes to the main upstream only.
	big := strings.Repeat("x", 4<<10)
	resp, e := getJSON(t, c, mustReq(t, "PUT", ts.url("/orders/big"), strings.NewReader(big)))
	if resp.StatusCode != 200 || e.Body != big {
		t.Fatalf("big body: %d, %d bytes", resp.StatusCode, len(e.Body))
	}
	noCopy(t, copies)
	waitMetric(t, ts, 1, "sluice_http_mirror_dropped_total", `route="orders"`, `reason="body"`)
	// 0% mirrors nothing.
	for range 5 {
		get(t, c, ts.url("/never"), nil)
	}
	noCopy(t, copies)
	waitMetric(t, ts, 3, "sluice_http_mirror_requests_total", `route="orders"`, `cluster="shadow"`, `result="sent"`)
	waitMetric(t, ts, 0, "sluice_http_mirror_requests_total", `route="never"`)
}

// TestMirrorSlowOrDownShadow: a shadow that never answers, or is not
// there, changes nothing for the client; copies beyond
// server.max_mirrors_in_flight are dropped and counted rather than piling
// up goroutines.
func TestMirrorSlowOrDownShadow(t *testing.T) {
	main := startEcho(t, "main", nil)
	release := make(chan struct{})
	slow, copies := startShadow(t, release)
	t.Cleanup(func() { close(release) }) // runs before the shadow closes
	ts := startServer(t, fmt.Sprintf(`
[admin]
address = "127.0.0.1:0"
[server]
watch_config = false
drain_timeout = "5s"
max_mirrors_in_flight = 2

[[listeners]]
name = "public"
address = "127.0.0.1:0"

[[routes]]
name = "down"
match = { path_prefix = "/down" }
mirror = "down"
backends = [ { cluster = "main" } ]

[[routes]]
name = "slow"
timeout = "60s"
mirror = "slow"
backends = [ { cluster = "main" } ]

[[clusters]]
name = "main"
endpoints = [%q]

[[clusters]]
name = "slow"
endpoints = [%q]

[[clusters]]
name = "down"
endpoints = [%q]
`, main.addr, slow.addr, closedPort(t)))
	// The client's timeout is the bound: a request that waited for its
	// shadow (held until the test ends) would fail here.
	c := &http.Client{Timeout: 5 * time.Second}
	const n = 10
	for i := range n {
		req := mustReq(t, "POST", ts.url(fmt.Sprintf("/slow/%d", i)), strings.NewReader("body"))
		resp, e := getJSON(t, c, req)
		if resp.StatusCode != 200 || e.Name != "main" || e.Body != "body" {
			t.Fatalf("request %d: %d %+v", i, resp.StatusCode, e)
		}
	}
	nextCopy(t, copies)
	nextCopy(t, copies)
	noCopy(t, copies)
	waitMetric(t, ts, n-2, "sluice_http_mirror_dropped_total", `route="slow"`, `reason="in_flight_limit"`)
	if got := metricValue(t, ts, "sluice_http_mirror_in_flight"); got != 2 {
		t.Errorf("in flight %d, want 2", got)
	}

	// A shadow that refuses connections: the client sees nothing of it.
	// The two slow copies still hold the slots, so free them first.
	release <- struct{}{}
	release <- struct{}{}
	waitMetric(t, ts, 0, "sluice_http_mirror_in_flight")
	for i := range 3 {
		_, e := get(t, c, ts.url(fmt.Sprintf("/down/%d", i)), nil)
		if e.Name != "main" {
			t.Fatalf("request %d: %+v", i, e)
		}
		// One at a time, so the in-flight bound drops none.
		waitMetric(t, ts, int64(i+1), "sluice_http_mirror_requests_total", `route="down"`, `result="failed"`)
	}
	waitMetric(t, ts, 2, "sluice_http_mirror_requests_total", `route="slow"`, `result="sent"`)
}

// closedPort is a 127.0.0.1 address nothing listens on (bound, then
// closed).
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestMeshMirrorToShadowService: three sidecars. The app calls payments
// through A; A's [[services]] entry mirrors it to payments-v2, whose
// sidecar C (its own identity) hands the copy to a shadow app that never
// answers. The client gets B's app's answer; the shadow app sees the copy
// with host "payments-shadow", the body, and A's identity in
// x-forwarded-client-cert.
func TestMeshMirrorToShadowService(t *testing.T) {
	const idV2 = "spiffe://example.org/ns/default/sa/payments-v2"
	release := make(chan struct{})
	shadowApp, copies := startShadow(t, release)
	t.Cleanup(func() { close(release) })
	pki := newMeshPKI(t, "example.org")
	cCert, cKey := pki.issue("payments-v2", idV2, time.Time{}, time.Hour)
	c := startServer(t, sidecarConfig(cCert, cKey, pki.bundle(), shadowApp.addr, "strict", ""))

	m := &twoSidecars{pki: pki}
	m.app = startEcho(t, "app", nil)
	m.bCert, m.bKey = pki.issue("payments", idPayments, time.Time{}, time.Hour)
	m.aCert, m.aKey = pki.issue("orders", idOrders, time.Time{}, time.Hour)
	m.b = startServer(t, sidecarConfig(m.bCert, m.bKey, pki.bundle(), m.app.addr, "strict", ""))
	m.a = startServer(t, sidecarConfig(m.aCert, m.aKey, pki.bundle(), "127.0.0.1:1", "strict", fmt.Sprintf(`
[[services]]
name = "payments"
endpoints = [%q]
identity = %q
mirror = "payments-v2"

[[services]]
name = "payments-v2"
endpoints = [%q]
identity = %q
`, m.b.ListenerAddr("inbound"), idPayments, c.ListenerAddr("inbound"), idV2)))

	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 3 {
		req := mustReq(t, "POST", m.outboundURL("/pay"), strings.NewReader(fmt.Sprintf("charge %d", i)))
		req.Host = "payments"
		resp, e := getJSON(t, client, req)
		if resp.StatusCode != 200 || e.Name != "app" || e.Body != fmt.Sprintf("charge %d", i) || e.Host != "payments" {
			t.Fatalf("request %d: %d %+v", i, resp.StatusCode, e)
		}
		got := nextCopy(t, copies)
		xfcc := got.header.Get("X-Forwarded-Client-Cert")
		if got.host != "payments-shadow" || got.body != fmt.Sprintf("charge %d", i) || got.path != "/pay" ||
			!strings.HasPrefix(xfcc, "By="+idV2) || !strings.HasSuffix(xfcc, "URI="+idOrders) {
			t.Fatalf("shadow copy %d: %+v (xfcc %q)", i, got, xfcc)
		}
	}
	if n := metricValue(t, m.a, "sluice_http_mirror_requests_total", `route="outbound|payments"`, `cluster="outbound|payments-v2"`); n != 0 {
		t.Errorf("%d copies finished, but the shadow app holds them all", n)
	}
	if n := metricValue(t, m.a, "sluice_http_mirror_in_flight"); n != 3 {
		t.Errorf("in flight %d, want 3", n)
	}
}
