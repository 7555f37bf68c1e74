package hostabi

import (
	"strings"
	"testing"
)

func TestMetricsHostcalls(t *testing.T) {
	p, _, _ := runHeaders(t, "request_headers: m_define 0 req_total_route=a | m_inc req_total_route=a 5 | m_inc req_total_route=a 2 | m_get req_total_route=a"+
		" | m_define 1 inflight | m_record inflight 7 | m_inc inflight -3 | m_get inflight"+
		" | m_define 2 latency | m_record latency 12 | m_get latency | m_inc latency 1 | m_define 9 bad | m_get nope", newTestStream())
	wantLogs(t, p.Name(),
		"request_headers m_get: status=0 value=7",
		"request_headers m_get: status=0 value=4",
		"request_headers m_get: status=2 value=0", // histograms cannot be read
		"request_headers m_inc: status=2",         // nor incremented
		"request_headers m_define: status=2",      // unknown kind
		"request_headers m_get: status=1 value=0") // unknown id
	var hist *MetricValue
	for _, m := range testMetrics.Snapshot() {
		if m.Name == "latency" {
			hist = &m
		}
	}
	if hist == nil || hist.Count < 1 || hist.Value < 12 {
		t.Errorf("histogram = %+v", hist)
	}
}

func TestMemoryMetricsDefineIsIdempotent(t *testing.T) {
	m := NewMemoryMetrics()
	a, _ := m.Define(Counter, "x")
	b, _ := m.Define(Counter, "x")
	c, _ := m.Define(Gauge, "x")
	if a != b || a == c || a&3 != uint32(Counter) || c&3 != uint32(Gauge) {
		t.Errorf("ids %d %d %d", a, b, c)
	}
	if err := m.Increment(a, -1); err == nil {
		t.Error("counter went down")
	}
	if _, err := m.Define(Histogram+1, "y"); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Error("bad kind accepted")
	}
}

func TestSplitMetricName(t *testing.T) {
	tests := []struct {
		in, base string
		labels   [][2]string
	}{
		{"requests_total", "requests_total", nil},
		{"requests_total_route=orders", "requests_total", [][2]string{{"route", "orders"}}},
		{"rq_route=orders_code=200", "rq", [][2]string{{"route", "orders"}, {"code", "200"}}},
		{"rq_route=my_route", "rq", [][2]string{{"route", "my_route"}}},
		{"wasm_instance_failures_total_plugin=auth_cause=memory_limit", "wasm_instance_failures_total",
			[][2]string{{"plugin", "auth"}, {"cause", "memory_limit"}}},
	}
	for _, tt := range tests {
		base, labels := SplitMetricName(tt.in)
		if base != tt.base || len(labels) != len(tt.labels) {
			t.Errorf("%q: got %q %v", tt.in, base, labels)
			continue
		}
		for i := range labels {
			if labels[i] != tt.labels[i] {
				t.Errorf("%q: label %d = %v, want %v", tt.in, i, labels[i], tt.labels[i])
			}
		}
	}
}
