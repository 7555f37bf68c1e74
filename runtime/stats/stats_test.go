package stats

import (
	"strings"
	"sync"
	"testing"
)

func TestPrometheusText(t *testing.T) {
	r := NewRegistry()
	r.Counter("sluice_requests_total", "Requests.", "route", "orders", "code", "2xx").Add(3)
	r.Gauge("sluice_upstream_pending", "Pending.", "cluster", `we"ird`).Set(2)
	h := r.Histogram("sluice_latency_seconds", "Latency.", []float64{0.1, 1})
	h.Observe(0.05)
	h.Observe(0.5)
	h.Observe(5)
	var b strings.Builder
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"# TYPE sluice_requests_total counter",
		`sluice_requests_total{route="orders",code="2xx"} 3`,
		`sluice_upstream_pending{cluster="we\"ird"} 2`,
		`sluice_latency_seconds_bucket{le="0.1"} 1`,
		`sluice_latency_seconds_bucket{le="1"} 2`,
		`sluice_latency_seconds_bucket{le="+Inf"} 3`,
		`sluice_latency_seconds_sum 5.55`,
		`sluice_latency_seconds_count 3`,
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w+"\n") {
			t.Errorf("missing %q in\n%s", w, b.String())
		}
	}
}

func TestSameSeriesReturned(t *testing.T) {
	r := NewRegistry()
	a := r.Counter("c", "", "k", "v")
	b := r.Counter("c", "", "k", "v")
	if a != b {
		t.Fatal("same name and labels gave two counters")
	}
	if r.Counter("c", "", "k", "w") == a {
		t.Fatal("different labels gave the same counter")
	}
}

func TestKindClashPanics(t *testing.T) {
	r := NewRegistry()
	r.Counter("x", "")
	defer func() {
		if recover() == nil {
			t.Fatal("registering x as a gauge after a counter did not panic")
		}
	}()
	r.Gauge("x", "")
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{"ok_name": "ok_name", "a.b-c": "a_b_c", "9lives": "_lives", "": "_"} {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConcurrentUpdates(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				r.Counter("hammer", "", "k", "v").Inc()
				r.Histogram("hammer_h", "", nil).Observe(0.001)
			}
		}()
	}
	wg.Wait()
	if got := r.Counter("hammer", "", "k", "v").Value(); got != 8000 {
		t.Fatalf("counter = %d, want 8000", got)
	}
	if got := r.Histogram("hammer_h", "", nil).Count(); got != 8000 {
		t.Fatalf("histogram count = %d, want 8000", got)
	}
}
