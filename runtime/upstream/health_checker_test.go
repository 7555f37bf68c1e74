package upstream

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// healthToggle serves /healthz with 200 or 503 as healthy says, and its
// name elsewhere.
func healthToggle(name string, healthy *atomic.Bool, checks *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			checks.Add(1)
			if r.Header.Get("User-Agent") != "sluice-health-check" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if !healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		io.WriteString(w, name)
	})
}

func TestHealthCheck(t *testing.T) {
	for _, protocol := range []string{"http1", "h2c"} {
		t.Run(protocol, func(t *testing.T) {
			var aOK, bOK atomic.Bool
			var aChecks, bChecks atomic.Int32
			aOK.Store(true)
			bOK.Store(true)
			a := startHTTP(t, "a", healthToggle("a", &aOK, &aChecks), protocol == "h2c")
			b := startHTTP(t, "b", healthToggle("b", &bOK, &bChecks), protocol == "h2c")
			m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: protocol, Endpoints: addrs(a, b),
				HealthCheck: &config.HealthCheck{Path: "/healthz", Interval: config.Duration(20 * time.Millisecond),
					Timeout: config.Duration(time.Second), UnhealthyThreshold: 2, HealthyThreshold: 2}})
			c := m.Cluster("c")
			eventually(t, 2*time.Second, "first checks", func() bool { return aChecks.Load() > 0 && bChecks.Load() > 0 })

			bOK.Store(false)
			eventually(t, 2*time.Second, "b unhealthy", func() bool { return !c.Status().Endpoints[1].Healthy })
			for i := 0; i < 6; i++ {
				if got := mustGet(t, c, Pick{}); got != "a" {
					t.Fatalf("unhealthy endpoint served: %s", got)
				}
			}
			// Both down: panic mode sends to all rather than failing.
			aOK.Store(false)
			eventually(t, 2*time.Second, "a unhealthy", func() bool { return !c.Status().Endpoints[0].Healthy })
			seen := map[string]bool{}
			for i := 0; i < 6; i++ {
				seen[mustGet(t, c, Pick{})] = true
			}
			if !seen["a"] || !seen["b"] {
				t.Errorf("panic mode reached %v, want both", seen)
			}
			aOK.Store(true)
			bOK.Store(true)
			eventually(t, 2*time.Second, "recovery", func() bool {
				st := c.Status()
				return st.Endpoints[0].Healthy && st.Endpoints[1].Healthy
			})
			if n := c.Status().ActiveRequests; n != 0 {
				t.Errorf("health checks counted as requests: %d active", n)
			}
		})
	}
}

func TestHealthCheckExpectedStatuses(t *testing.T) {
	h := &healthChecker{}
	if !h.statusOK(204) || h.statusOK(301) || h.statusOK(500) {
		t.Error("default expected statuses are not 2xx")
	}
	h.expected = []int{200, 418}
	if !h.statusOK(418) || h.statusOK(204) {
		t.Error("expected_statuses not honoured")
	}
}

// TestHealthCheckRequest: the check is GET path with the user agent, and
// its Host is the name the endpoint was resolved from (DNS) or, without
// one, the endpoint's address.
func TestHealthCheckRequest(t *testing.T) {
	var seen sync.Map // Host -> request line
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Host, r.Method+" "+r.RequestURI+" "+r.Header.Get("User-Agent"))
	})
	static := startHTTP(t, "a", h, false)
	_, port, _ := net.SplitHostPort(static.addr)
	dns := &fakeDNS{answers: map[string][]string{"svc.test": {"127.0.0.1"}}}
	opts := defaultOptions()
	opts.lookup = dns.lookup
	hc := &config.HealthCheck{Path: "/healthz?deep=1", Interval: config.Duration(20 * time.Millisecond)}
	newTestManager(t, opts,
		config.Cluster{Name: "static", Endpoints: []string{static.addr}, HealthCheck: hc},
		config.Cluster{Name: "dns", DNS: "svc.test:" + port, HealthCheck: hc})
	for _, host := range []string{static.addr, "svc.test"} {
		eventually(t, 2*time.Second, "a check with Host "+host, func() bool { _, ok := seen.Load(host); return ok })
		if line, _ := seen.Load(host); line != "GET /healthz?deep=1 sluice-health-check" {
			t.Errorf("Host %s: upstream saw %q", host, line)
		}
	}
}
