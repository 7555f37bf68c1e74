package mesh

import (
	"testing"

	"github.com/sluice-proxy/sluice/runtime/stats"
)

func TestMetricsSeries(t *testing.T) {
	reg := stats.NewRegistry()
	m := NewMetrics(reg)
	m.request("inbound", "spiffe://td/ns/a/sa/x", "", 200)
	m.request("inbound", "spiffe://td/ns/a/sa/x", "", 204)
	m.request("inbound", "", "", 0)
	m.denied("deny-all")
	a := reg.Counter("sluice_mesh_requests_total", "", "direction", "inbound", "source_principal", "spiffe://td/ns/a/sa/x",
		"destination_principal", "unknown", "code_class", "2xx")
	b := reg.Counter("sluice_mesh_requests_total", "", "direction", "inbound", "source_principal", "unknown",
		"destination_principal", "unknown", "code_class", "none")
	d := reg.Counter("sluice_rbac_denied_total", "", "policy", "deny-all")
	if a.Value() != 2 || b.Value() != 1 || d.Value() != 1 {
		t.Fatalf("counts %v %v %v, want 2 1 1", a.Value(), b.Value(), d.Value())
	}
	if n := testing.AllocsPerRun(100, func() { m.request("outbound", "spiffe://td/ns/a/sa/x", "spiffe://td/ns/b/sa/y", 503) }); n != 0 {
		t.Errorf("a request on a known series: %v allocations, want 0", n)
	}
}
