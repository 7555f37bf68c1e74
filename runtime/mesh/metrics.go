package mesh

import (
	"strings"
	"sync"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// Metrics are the sidecar's per-identity series, in the shape of Istio's
// istio_requests_total: requests by direction, source and destination
// principal and status class, and authorization denials by policy. One
// Metrics lives as long as the server; series handles are cached.
type Metrics struct {
	reg    *stats.Registry
	series sync.Map // label key -> *stats.Counter
}

// NewMetrics registers nothing until the first request.
func NewMetrics(reg *stats.Registry) *Metrics { return &Metrics{reg: reg} }

const unknownPrincipal = "unknown"

func (m *Metrics) counter(name, help string, labels ...string) *stats.Counter {
	key := name + "\x00" + strings.Join(labels, "\x00")
	if c, ok := m.series.Load(key); ok {
		return c.(*stats.Counter)
	}
	c := m.reg.Counter(name, help, labels...)
	m.series.Store(key, c)
	return c
}

func (m *Metrics) request(direction, src, dst string, status int) {
	if m == nil {
		return
	}
	if src == "" {
		src = unknownPrincipal
	}
	if dst == "" {
		dst = unknownPrincipal
	}
	class := "none"
	if status >= 100 && status < 600 {
		class = string('0'+byte(status/100)) + "xx"
	}
	m.counter("sluice_mesh_requests_total", "Sidecar requests by direction, source and destination principal and status class.",
		"direction", direction, "source_principal", src, "destination_principal", dst, "code_class", class).Inc()
}

func (m *Metrics) denied(policy string) {
	if m == nil {
		return
	}
	m.counter("sluice_rbac_denied_total", "Requests denied by [[authorization]], by the policy that decided.", "policy", policy).Inc()
}

// record is the headers filter's OnLog.
func (f *HeadersFactory) record(s filter.Stream) {
	if f.Metrics == nil {
		return
	}
	status := 0
	info := s.Info()
	if r := s.Response(); r != nil {
		status = r.Status
	} else if strings.HasPrefix(info.ResponseDetails, "rbac_access_denied") {
		// Local replies have no filter-visible response head yet; ours
		// is known.
		status = 403
	}
	if f.inbound {
		f.Metrics.request("inbound", PeerID(info), f.local(), status)
		return
	}
	f.Metrics.request("outbound", f.local(), f.ClusterIdentity[info.ClusterName], status)
}
