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
	reg *stats.Registry

	mu       sync.RWMutex
	requests map[requestKey]*stats.Counter
	denials  map[string]*stats.Counter
}

// requestKey names one sluice_mesh_requests_total series; a comparable
// struct, so finding the series of a request allocates nothing.
type requestKey struct{ direction, src, dst, class string }

// NewMetrics registers nothing until the first request.
func NewMetrics(reg *stats.Registry) *Metrics {
	return &Metrics{reg: reg, requests: map[requestKey]*stats.Counter{}, denials: map[string]*stats.Counter{}}
}

const unknownPrincipal = "unknown"

// codeClasses are the status classes by first digit; "none" otherwise.
var codeClasses = [...]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

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
	class := codeClasses[0]
	if status >= 100 && status < 600 {
		class = codeClasses[status/100]
	}
	k := requestKey{direction, src, dst, class}
	m.mu.RLock()
	c := m.requests[k]
	m.mu.RUnlock()
	if c == nil {
		c = m.reg.Counter("sluice_mesh_requests_total", "Sidecar requests by direction, source and destination principal and status class.",
			"direction", direction, "source_principal", src, "destination_principal", dst, "code_class", class)
		m.mu.Lock()
		m.requests[k] = c
		m.mu.Unlock()
	}
	c.Inc()
}

func (m *Metrics) denied(policy string) {
	if m == nil {
		return
	}
	m.mu.RLock()
	c := m.denials[policy]
	m.mu.RUnlock()
	if c == nil {
		c = m.reg.Counter("sluice_rbac_denied_total", "Requests denied by [[authorization]], by the policy that decided.", "policy", policy)
		m.mu.Lock()
		m.denials[policy] = c
		m.mu.Unlock()
	}
	c.Inc()
}

// record is the headers filter's OnLog.
func (f *HeadersFactory) record(s filter.Stream) {
	if f.Metrics == nil {
		return
	}
	status := 0
	info := s.Info()
	if st := filter.ResponseStatus(s); st != 0 {
		status = st
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
