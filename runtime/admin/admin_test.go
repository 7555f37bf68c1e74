package admin

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/stats"
)

type fakeServer struct{ reloads, pluginReloads atomic.Int32 }

func (f *fakeServer) Ready() bool                 { return true }
func (f *fakeServer) ConfigJSON() ([]byte, error) { return []byte(`{}`), nil }
func (f *fakeServer) Reload() error               { f.reloads.Add(1); return nil }
func (f *fakeServer) ReloadPlugins() error        { f.pluginReloads.Add(1); return nil }
func (f *fakeServer) Plugins() any                { return []string{} }
func (f *fakeServer) Clusters() any               { return []string{} }

func startAdmin(t *testing.T, address string) (*Admin, *fakeServer) {
	t.Helper()
	f := &fakeServer{}
	a, err := Start(address, f, stats.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Skipf("cannot listen on %s: %v", address, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return a, f
}

// A web page cannot make the operator's browser reload the config or the
// plugins: a POST with a foreign Origin, or a Sec-Fetch-Site saying it
// comes from another site, is refused; the admin's own origin and clients
// that send neither (curl) still work, and reads are not affected.
func TestMutatingEndpointsRefuseCrossSite(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
		a, f := startAdmin(t, listen)
		addr := a.Addr().(*net.TCPAddr)
		port := strconv.Itoa(addr.Port)
		self := "http://" + a.Addr().String()
		otherPort := "http://" + net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port+1))
		cases := []struct {
			name    string
			headers map[string]string
			ok      bool
		}{
			{"curl", nil, true},
			{"own origin", map[string]string{"Origin": self}, true},
			{"own origin, same-origin fetch", map[string]string{"Origin": self, "Sec-Fetch-Site": "same-origin"}, true},
			{"localhost", map[string]string{"Origin": "http://localhost:" + port}, true},
			{"typed by the user", map[string]string{"Sec-Fetch-Site": "none"}, true},
			{"foreign page", map[string]string{"Origin": "https://evil.example"}, false},
			{"foreign page, same port", map[string]string{"Origin": "http://evil.example:" + port}, false},
			{"page on another local port", map[string]string{"Origin": otherPort, "Sec-Fetch-Site": "same-site"}, false},
			{"page on another local port, no fetch metadata", map[string]string{"Origin": otherPort}, false},
			{"https", map[string]string{"Origin": "https://" + a.Addr().String()}, false},
			{"opaque origin", map[string]string{"Origin": "null"}, false},
			{"cross-site without Origin", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
			{"same-site without Origin", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		}
		want := int32(0)
		for _, c := range cases {
			for _, path := range []string{"/config/reload", "/plugins/reload"} {
				req, _ := http.NewRequest("POST", self+path, strings.NewReader(""))
				req.Header.Set("Content-Type", "text/plain") // a "simple" request, no preflight
				for k, v := range c.headers {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				wantCode := http.StatusOK
				if !c.ok {
					wantCode = http.StatusForbidden
				}
				if resp.StatusCode != wantCode {
					t.Errorf("%s: %s POST %s: %d %s, want %d", listen, c.name, path, resp.StatusCode, body, wantCode)
				}
				if !c.ok && !strings.Contains(string(body), `"error"`) {
					t.Errorf("%s: %s: refusal %q is not the JSON error shape", listen, c.name, body)
				}
			}
			if c.ok {
				want++
			}
		}
		if f.reloads.Load() != want || f.pluginReloads.Load() != want {
			t.Errorf("%s: %d config and %d plugin reloads ran, want %d each", listen, f.reloads.Load(), f.pluginReloads.Load(), want)
		}
		// Reads stay as they are, whoever asks.
		req, _ := http.NewRequest("GET", self+"/config", nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: GET /config with a foreign Origin: %d", listen, resp.StatusCode)
		}
	}
}

// On a wildcard listener the own origin is any of the host's addresses
// (as an IP literal) on the admin port; names other than localhost are
// still refused.
func TestOwnOriginOnWildcardListener(t *testing.T) {
	a, _ := startAdmin(t, "0.0.0.0:0")
	port := strconv.Itoa(a.Addr().(*net.TCPAddr).Port)
	for origin, want := range map[string]bool{
		"http://127.0.0.1:" + port:        true,
		"http://10.1.2.3:" + port:         true,
		"http://localhost:" + port:        true,
		"http://admin.corp:" + port:       false,
		"http://127.0.0.1:1":              false,
		"http://127.0.0.1:" + port + "/x": false,
	} {
		if got := a.ownOrigin(origin); got != want {
			t.Errorf("ownOrigin(%q) = %v, want %v", origin, got, want)
		}
	}
}

// GET / without a browser's Accept is a plain-text index of the
// endpoints; with one, the dashboard page, whose script and style come
// from the binary. GET /summary adds the registry's request counters up
// by route and cluster.
func TestIndexAndSummary(t *testing.T) {
	reg := stats.NewRegistry()
	reg.Counter("sluice_http_requests_total", "", "route", "orders", "code_class", "2xx").Add(7)
	reg.Counter("sluice_http_requests_total", "", "route", "orders", "code_class", "5xx").Add(2)
	reg.Counter("sluice_http_requests_total", "", "route", "users", "code_class", "none").Add(1)
	reg.Counter("sluice_upstream_rq_total", "", "cluster", "orders-app", "code_class", "2xx").Add(9)
	reg.Counter("sluice_upstream_rq_failed_total", "", "cluster", "orders-app", "failure", "reset").Add(3)
	reg.Counter("sluice_upstream_ejections_total", "", "cluster", "orders-app").Add(1)
	a, err := Start("127.0.0.1:0", &fakeServer{}, reg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	base := "http://" + a.Addr().String()
	get := func(path, accept string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := get("/", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET / for curl: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, e := range endpoints {
		if !strings.Contains(body, e.Path) {
			t.Errorf("the text index lacks %s:\n%s", e.Path, body)
		}
	}
	resp, body = get("/", "text/html,application/xhtml+xml")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `src="/dashboard/dashboard.js"`) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET / for a browser: %s, CSP %q\n%s", resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"), body)
	}
	for _, asset := range []string{"/dashboard/dashboard.js", "/dashboard/dashboard.css", "/dashboard/favicon.svg"} {
		if resp, body := get(asset, ""); resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d", asset, resp.StatusCode)
		}
	}
	if resp, _ := get("/nothing-here", ""); resp.StatusCode != 404 {
		t.Errorf("GET /nothing-here: %d, want 404 (only / itself is the index)", resp.StatusCode)
	}

	_, body = get("/summary", "")
	var s summary
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("/summary: %v\n%s", err, body)
	}
	if s.Requests != 10 || s.Errors != 3 || len(s.Routes) != 2 || s.Routes[0].Name != "orders" || s.Routes[0].Requests != 9 || s.Routes[0].Errors != 2 || s.Routes[1].Errors != 1 {
		t.Errorf("/summary routes: %s", body)
	}
	if len(s.Clusters) != 1 || s.Clusters[0] != (clusterSummary{Name: "orders-app", Requests: 9, Failed: 3, Ejections: 1}) {
		t.Errorf("/summary clusters: %s", body)
	}
	if s.Time == 0 {
		t.Error("/summary has no time")
	}
}

// The heap profiler is switched on and off through the admin API, as
// Envoy's /heapprofiler; a web page cannot switch it, and anything but
// y or n is refused without changing it.
func TestHeapProfilerSwitch(t *testing.T) {
	rate := runtime.MemProfileRate
	t.Cleanup(func() { runtime.MemProfileRate = rate })
	runtime.MemProfileRate = 0
	a, _ := startAdmin(t, "127.0.0.1:0")
	base := "http://" + a.Addr().String() + "/heapprofiler?enable="
	post := func(v string, foreign bool) int {
		req, _ := http.NewRequest("POST", base+v, nil)
		if foreign {
			req.Header.Set("Origin", "https://evil.example")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("y", true); code != http.StatusForbidden || runtime.MemProfileRate != 0 {
		t.Fatalf("cross-site enable: %d, rate %d", code, runtime.MemProfileRate)
	}
	if code := post("y", false); code != http.StatusOK || runtime.MemProfileRate != HeapProfileRate {
		t.Fatalf("enable=y: %d, rate %d", code, runtime.MemProfileRate)
	}
	if code := post("yes", false); code != http.StatusBadRequest || runtime.MemProfileRate != HeapProfileRate {
		t.Fatalf("enable=yes: %d, rate %d (want 400, unchanged)", code, runtime.MemProfileRate)
	}
	if code := post("n", false); code != http.StatusOK || runtime.MemProfileRate != 0 {
		t.Fatalf("enable=n: %d, rate %d", code, runtime.MemProfileRate)
	}
}
