package upstream

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// flaky answers 500 while failing is set.
func flaky(name string, failing *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-backend", name)
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
		w.Write([]byte(name))
	})
}

func TestOutlierEjectionAndRecovery(t *testing.T) {
	var bad atomic.Bool
	bad.Store(true)
	good := startHTTP(t, "good", nil, false)
	sick := startHTTP(t, "sick", flaky("sick", &bad), false)
	base := 150 * time.Millisecond
	m, reg := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: addrs(good, sick),
		Outlier: &config.Outlier{Consecutive5xx: 3, BaseEjectionTime: config.Duration(base), Interval: config.Duration(time.Hour), MaxEjectionPercent: 50}})
	c := m.Cluster("c")
	// Round robin alternates: 3 failures of "sick" take 6 requests.
	for i := 0; i < 6; i++ {
		mustGet(t, c, Pick{})
	}
	st := c.Status()
	if !st.Endpoints[1].Ejected || st.Endpoints[1].EjectedUntil == nil || st.Endpoints[1].Ejections != 1 {
		t.Fatalf("sick endpoint not ejected after 3 consecutive 5xx: %+v", st.Endpoints)
	}
	if !strings.Contains(metricText(t, reg), `sluice_upstream_ejections_total{cluster="c"} 1`) {
		t.Error("ejection not counted")
	}
	// The checks measure against the ejection's own end and the clock
	// read before the requests that eject: a busy machine's delays can
	// only make them looser, never fail them.
	until := *st.Endpoints[1].EjectedUntil
	for i := 0; i < 10; i++ {
		if b := mustGet(t, c, Pick{}); b != "good" && time.Now().Before(until) {
			t.Fatalf("ejected endpoint served request %d", i)
		}
	}
	eventually(t, 2*time.Second, "un-ejection", func() bool { return !c.Status().Endpoints[1].Ejected })
	if early := time.Until(until); early > 20*time.Millisecond {
		t.Errorf("un-ejected %v before its end, base_ejection_time %v", early, base)
	}
	// Second ejection lasts twice as long (Istio: base x ejections).
	start := time.Now()
	for i := 0; i < 6; i++ {
		mustGet(t, c, Pick{})
	}
	st = c.Status()
	if !st.Endpoints[1].Ejected {
		t.Fatal("not ejected again")
	}
	if d := st.Endpoints[1].EjectedUntil.Sub(start); d < 2*base-5*time.Millisecond {
		t.Errorf("second ejection ends %v after the requests began, want at least %v", d, 2*base)
	}
	// Recovered: the endpoint serves again once back.
	bad.Store(false)
	eventually(t, 3*time.Second, "second un-ejection", func() bool { return !c.Status().Endpoints[1].Ejected })
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		seen[mustGet(t, c, Pick{})] = true
	}
	if !seen["sick"] {
		t.Error("recovered endpoint gets no traffic")
	}
}

func TestOutlierCountsConnectFailures(t *testing.T) {
	good := startHTTP(t, "good", nil, false)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: []string{good.addr, closedAddr(t)},
		Outlier: &config.Outlier{Consecutive5xx: 2, BaseEjectionTime: config.Duration(time.Minute)}})
	c := m.Cluster("c")
	failures := 0
	for i := 0; i < 10; i++ {
		if _, err := get(t, c, Pick{}); err != nil {
			if Classify(err) != ConnectFailure {
				t.Errorf("err %v classified %v", err, Classify(err))
			}
			failures++
		}
	}
	if failures != 2 {
		t.Errorf("%d connect failures before ejection, want 2", failures)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	var bad atomic.Bool
	bad.Store(true)
	var bs []backend
	for _, n := range []string{"a", "b", "c", "d"} {
		bs = append(bs, startHTTP(t, n, flaky(n, &bad), false))
	}
	tests := []struct {
		pct, wantEjected int
	}{
		{0, 1},   // default 10%: one endpoint can always go
		{50, 2},  // 2 of 4
		{100, 4}, // all: panic mode then spreads over all
	}
	for _, tt := range tests {
		m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Endpoints: addrs(bs...),
			Outlier: &config.Outlier{Consecutive5xx: 1, BaseEjectionTime: config.Duration(time.Minute), MaxEjectionPercent: tt.pct}})
		for i := 0; i < 20; i++ {
			mustGet(t, m.Cluster("c"), Pick{})
		}
		n := 0
		for _, e := range m.Cluster("c").Status().Endpoints {
			if e.Ejected {
				n++
			}
		}
		if n != tt.wantEjected {
			t.Errorf("max_ejection_percent %d: %d ejected, want %d", tt.pct, n, tt.wantEjected)
		}
		m.Close()
	}
}
