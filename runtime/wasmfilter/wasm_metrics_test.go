package wasmfilter

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

func TestWasmMetricsOnPrometheusPage(t *testing.T) {
	reg := stats.NewRegistry()
	reg.Counter("sluice_requests_total", "sluice's own")
	m := NewWasmMetrics(reg)
	c, err := m.Define(hostabi.Counter, "requests_total_route=orders_code=200")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := m.Define(hostabi.Counter, "requests_total_route=orders_code=200"); again != c {
		t.Error("Define is not idempotent")
	}
	g, _ := m.Define(hostabi.Gauge, "inflight")
	h, _ := m.Define(hostabi.Histogram, "body_bytes")
	steps := []error{m.Increment(c, 3), m.Record(g, 7), m.Increment(g, -2), m.Record(h, 42)}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if v, _ := m.Get(c); v != 3 {
		t.Errorf("counter = %d", v)
	}
	if v, _ := m.Get(g); v != 5 {
		t.Errorf("gauge = %d", v)
	}
	refused := []error{m.Increment(c, -1), m.Record(c, 1), m.Increment(h, 1)}
	for i, err := range refused {
		if err == nil {
			t.Errorf("refused op %d succeeded", i)
		}
	}
	if _, err := m.Get(h); err == nil {
		t.Error("histogram read")
	}
	if _, err := m.Get(12345); err == nil {
		t.Error("unknown id read")
	}
	if _, err := m.Define(hostabi.Gauge, "sluice_requests_total"); err == nil {
		t.Error("a clash with sluice's own counter was accepted")
	}
	var b strings.Builder
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{`requests_total{route="orders",code="200"} 3`, "inflight 5", "body_bytes_count 1"} {
		if !strings.Contains(page, want) {
			t.Errorf("missing %q in:\n%s", want, page)
		}
	}
}
