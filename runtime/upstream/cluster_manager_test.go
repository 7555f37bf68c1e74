package upstream

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

func TestRebuildKeepsUnchangedClusters(t *testing.T) {
	var bad atomic.Bool
	bad.Store(true)
	good := startHTTP(t, "good", nil, false)
	sick := startHTTP(t, "sick", flaky("sick", &bad), false)
	outlier := &config.Outlier{Consecutive5xx: 1, BaseEjectionTime: config.Duration(time.Minute)}
	keep := config.Cluster{Name: "keep", Endpoints: addrs(good, sick), Outlier: outlier}
	change := config.Cluster{Name: "change", Endpoints: addrs(good)}
	drop := config.Cluster{Name: "drop", Endpoints: addrs(good), HealthCheck: &config.HealthCheck{Interval: config.Duration(10 * time.Millisecond)}}
	reg := stats.NewRegistry()
	m1, err := NewManager([]config.Cluster{keep, change, drop}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		mustGet(t, m1.Cluster("keep"), Pick{})
	}
	if !m1.Cluster("keep").Status().Endpoints[1].Ejected {
		t.Fatal("setup: sick endpoint not ejected")
	}
	// The new snapshot is built from fresh config values, as a reload does.
	keep2 := keep
	keep2.Outlier = &config.Outlier{Consecutive5xx: 1, BaseEjectionTime: config.Duration(time.Minute)}
	keep2.Endpoints = append([]string(nil), keep.Endpoints...)
	change2 := change
	change2.LB = "random"
	m2, err := m1.Rebuild([]config.Cluster{keep2, change2, {Name: "new", Endpoints: addrs(good)}})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Cluster("keep") != m1.Cluster("keep") {
		t.Error("unchanged cluster rebuilt")
	}
	if !m2.Cluster("keep").Status().Endpoints[1].Ejected {
		t.Error("ejection lost across Rebuild")
	}
	if m2.Cluster("change") == m1.Cluster("change") {
		t.Error("changed cluster reused")
	}
	if m2.Cluster("drop") != nil || m2.Cluster("new") == nil {
		t.Error("cluster set not replaced")
	}
	dropped := m1.Cluster("drop")
	if dropped.closed.Load() {
		t.Error("cluster closed before its manager")
	}
	// The old manager still serves in-flight work until it is closed.
	if got := mustGet(t, m1.Cluster("change"), Pick{}); got != "good" {
		t.Errorf("old manager: %q", got)
	}
	m1.Close()
	if !dropped.closed.Load() || !m1.Cluster("change").closed.Load() {
		t.Error("clusters only the old manager held are still open")
	}
	if m2.Cluster("keep").closed.Load() {
		t.Fatal("shared cluster closed with the old manager")
	}
	if got := mustGet(t, m2.Cluster("keep"), Pick{}); got != "good" {
		t.Errorf("shared cluster after old manager closed: %q", got)
	}
	m2.Close()
	if !m2.Cluster("keep").closed.Load() {
		t.Error("cluster open after every manager closed")
	}
	m2.Close() // idempotent
}

func TestRebuildErrorKeepsOld(t *testing.T) {
	good := startHTTP(t, "good", nil, false)
	m1, _ := newTestManager(t, nil, config.Cluster{Name: "a", Endpoints: addrs(good)})
	_, err := m1.Rebuild([]config.Cluster{{Name: "a", Endpoints: addrs(good)}, {Name: "b", Protocol: "ftp"}, {Name: "a"}})
	if err == nil || !strings.Contains(err.Error(), `cluster "b"`) || !strings.Contains(err.Error(), `cluster "a": defined twice`) {
		t.Fatalf("err = %v", err)
	}
	if m1.Cluster("a").closed.Load() {
		t.Fatal("failed Rebuild closed a cluster of the running manager")
	}
	if got := mustGet(t, m1.Cluster("a"), Pick{}); got != "good" {
		t.Errorf("old manager after failed rebuild: %q", got)
	}
}

func TestClosedClusterDrainsInFlight(t *testing.T) {
	cert, caFile := testCert(t)
	for _, protocol := range []string{"http1", "h2c", "h3"} {
		t.Run(protocol, func(t *testing.T) {
			g := newGate()
			var b backend
			var tlsCfg *config.UpstreamTLS
			if protocol == "h3" {
				b = startH3(t, "a", g, cert)
				tlsCfg = &config.UpstreamTLS{CA: caFile}
			} else {
				b = startHTTP(t, "a", g, protocol == "h2c")
			}
			m, err := NewManager([]config.Cluster{{Name: "c", Protocol: protocol, Endpoints: addrs(b), TLS: tlsCfg}}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := m.Cluster("c")
			done := make(chan error, 1)
			go func() {
				done <- sendOnce(context.Background(), c, &Request{Headers: headers("GET", "/", "x")}, make([]byte, 512))
			}()
			<-g.arrived
			m.Close()
			close(g.release)
			if err := <-done; err != nil {
				t.Errorf("in-flight request failed when its cluster closed: %v", err)
			}
			eventually(t, 2*time.Second, "connections closed", func() bool { return c.limiter.active.Load() == 0 })
		})
	}
}

func TestSnapshot(t *testing.T) {
	b := startHTTP(t, "a", nil, false)
	m, _ := newTestManager(t, nil,
		config.Cluster{Name: "z", Endpoints: addrs(b), LB: "least_request"},
		config.Cluster{Name: "a", LabeledEndpoints: []config.Endpoint{{Address: b.addr, Labels: map[string]string{"v": "1"}, Weight: 5}}})
	s := m.Snapshot()
	if len(s) != 2 || s[0].Name != "a" || s[1].Name != "z" {
		t.Fatalf("snapshot order: %+v", s)
	}
	if s[1].LB != "least_request" || s[0].LB != "round_robin" || s[0].Protocol != "http1" {
		t.Errorf("snapshot %+v", s)
	}
	e := s[0].Endpoints[0]
	if e.Address != b.addr || e.Weight != 5 || e.Labels["v"] != "1" || !e.Healthy || e.Ejected {
		t.Errorf("endpoint %+v", e)
	}
}

// ownGoroutines returns the stacks of goroutines running this package's
// (non-test) code: discovery loops, health checkers, pool janitors, dials,
// QUIC connection watchers. Library goroutines are tied to connections,
// which the test counts separately.
func ownGoroutines() []string {
	buf := make([]byte, 4<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "/runtime/upstream/") && !strings.Contains(g, "_test.go") {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseLeavesNoGoroutines runs every protocol, discovery loop, health
// checker and outlier timer, closes the manager, and expects none of the
// package's goroutines and no connection left.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	cert, caFile := testCert(t)
	h1 := startHTTP(t, "a", nil, false)
	h2c := startHTTP(t, "a", nil, true)
	h2 := startH2TLS(t, "a", nil, cert)
	h3 := startH3(t, "a", nil, cert)
	_, port, _ := net.SplitHostPort(h1.addr)
	path := filepath.Join(t.TempDir(), "eps")
	os.WriteFile(path, []byte(h1.addr+"\n"), 0o600)
	eventually(t, 3*time.Second, "goroutines of earlier tests to end", func() bool { return len(ownGoroutines()) == 0 })
	m, err := NewManager([]config.Cluster{
		{Name: "h1", Endpoints: []string{"localhost:" + port}, DNSRefresh: config.Duration(5 * time.Millisecond),
			HealthCheck: &config.HealthCheck{Interval: config.Duration(5 * time.Millisecond)},
			Outlier:     &config.Outlier{Consecutive5xx: 1}},
		{Name: "file", EndpointsFile: path},
		{Name: "h2c", Protocol: "h2c", Endpoints: addrs(h2c)},
		{Name: "h2", Protocol: "h2", Endpoints: addrs(h2), TLS: &config.UpstreamTLS{CA: caFile}},
		{Name: "h3", Protocol: "h3", Endpoints: addrs(h3), TLS: &config.UpstreamTLS{CA: caFile}},
		{Name: "down", Endpoints: []string{closedAddr(t)}, Outlier: &config.Outlier{Consecutive5xx: 1}},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"h1", "file", "h2c", "h2", "h3"}
	for _, name := range names {
		mustGet(t, m.Cluster(name), Pick{})
	}
	get(t, m.Cluster("down"), Pick{}) // ejects, arming a timer
	if !m.Cluster("down").Status().Endpoints[0].Ejected {
		t.Fatal("setup: endpoint not ejected")
	}
	if len(ownGoroutines()) == 0 {
		t.Fatal("setup: no goroutine of the package seen; the check below proves nothing")
	}
	m.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		g := ownGoroutines()
		open := int64(0)
		for _, name := range names {
			open += m.Cluster(name).limiter.active.Load()
		}
		if len(g) == 0 && open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close: %d connections open, goroutines:\n%s", open, strings.Join(g, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRebuildCarriesEndpointState: a cluster whose config changed is built
// anew, but the endpoints it keeps stay ejected or unhealthy.
func TestRebuildCarriesEndpointState(t *testing.T) {
	var checks atomic.Int32
	good := startHTTP(t, "good", nil, false)
	// Passes health checks, fails requests: only the outlier detector
	// catches it.
	sick := startHTTP(t, "sick", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}), false)
	down := startHTTP(t, "down", healthToggle("down", &atomic.Bool{}, &checks), false)
	cfg := config.Cluster{Name: "c", Endpoints: addrs(good, sick, down),
		Outlier:     &config.Outlier{Consecutive5xx: 1, BaseEjectionTime: config.Duration(time.Minute), MaxEjectionPercent: 100},
		HealthCheck: &config.HealthCheck{Path: "/healthz", Interval: config.Duration(time.Hour), UnhealthyThreshold: 1}}
	m1, _ := newTestManager(t, nil, cfg)
	c1 := m1.Cluster("c")
	eventually(t, 2*time.Second, "down unhealthy", func() bool { return !c1.Status().Endpoints[2].Healthy })
	for i := 0; i < 4; i++ {
		mustGet(t, c1, Pick{})
	}
	st1 := c1.Status()
	if !st1.Endpoints[1].Ejected {
		t.Fatalf("setup: sick not ejected: %+v", st1.Endpoints)
	}
	extra := startHTTP(t, "extra", nil, false)
	cfg2 := cfg
	cfg2.Endpoints = addrs(good, sick, down, extra)
	m2, err := m1.Rebuild([]config.Cluster{cfg2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m2.Close)
	c2 := m2.Cluster("c")
	if c2 == c1 {
		t.Fatal("changed cluster reused")
	}
	st2 := c2.Status()
	if !st2.Endpoints[1].Ejected || st2.Endpoints[1].EjectedUntil == nil || st2.Endpoints[1].EjectedUntil.Sub(*st1.Endpoints[1].EjectedUntil).Abs() > time.Second {
		t.Errorf("ejection not carried over: before %+v after %+v", st1.Endpoints[1], st2.Endpoints[1])
	}
	if st2.Endpoints[2].Healthy {
		t.Error("unhealthy endpoint trusted again after Rebuild")
	}
	if st2.Endpoints[0].Ejected || !st2.Endpoints[0].Healthy || st2.Endpoints[3].Ejected || !st2.Endpoints[3].Healthy {
		t.Errorf("healthy endpoints marked down: %+v", st2.Endpoints)
	}
	for i := 0; i < 6; i++ {
		if b := mustGet(t, c2, Pick{}); b != "good" && b != "extra" {
			t.Errorf("request %d went to %s", i, b)
		}
	}
	m1.Close()
	if !c2.Status().Endpoints[1].Ejected {
		t.Error("closing the old manager un-ejected the new cluster's endpoint")
	}
}
