// Package upstream is sluice's cluster manager: named clusters of
// endpoints (static, DNS, endpoints file), a connection pool per cluster
// and protocol (http1, h2, h2c, h3), load balancers (round_robin,
// least_request, random, ring_hash), circuit breaking, passive outlier
// ejection and active health checks. The proxy asks a Cluster for one try
// at a time (Send); retries and timeouts are the proxy's.
//
// State is per Cluster value: two clusters naming the same address share
// neither connections nor health. A config reload builds a new Manager with
// Rebuild, which hands unchanged clusters over whole (pools, health and
// ejections included).
package upstream

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// Manager holds every cluster of one config snapshot.
type Manager struct {
	clusters map[string]*Cluster
	order    []string
	reg      *stats.Registry
	log      *zap.Logger
	opts     *options

	closeOnce sync.Once
}

// NewManager builds the clusters of one config snapshot. Endpoints given
// as IPs and endpoints files are read before it returns; DNS names are
// resolved once before it returns too (a failed lookup leaves the name
// without endpoints until a later refresh succeeds).
func NewManager(clusters []config.Cluster, reg *stats.Registry, log *zap.Logger) (*Manager, error) {
	return newManager(clusters, reg, log, defaultOptions())
}

func newManager(clusters []config.Cluster, reg *stats.Registry, log *zap.Logger, opts *options) (*Manager, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if reg == nil {
		reg = stats.NewRegistry()
	}
	m := &Manager{clusters: make(map[string]*Cluster, len(clusters)), reg: reg, log: log.Named("upstream"), opts: opts}
	if err := m.build(clusters, nil); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Rebuild makes the manager for a new snapshot. Clusters whose config is
// unchanged are shared with m (their pools, endpoint health and ejections
// carry over); changed ones are built fresh but copy the health and
// ejections of the endpoints they keep; new ones start clean. m keeps serving
// in-flight requests; closing m closes only the clusters no newer manager
// holds. On error nothing changes and m is still valid.
func (m *Manager) Rebuild(clusters []config.Cluster) (*Manager, error) {
	n := &Manager{clusters: make(map[string]*Cluster, len(clusters)), reg: m.reg, log: m.log, opts: m.opts}
	if err := n.build(clusters, m); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (m *Manager) build(clusters []config.Cluster, prev *Manager) error {
	var errs []error
	for _, cfg := range clusters {
		if _, dup := m.clusters[cfg.Name]; dup {
			errs = append(errs, fmt.Errorf("cluster %q: defined twice", cfg.Name))
			continue
		}
		var old *Cluster
		if prev != nil {
			if old = prev.clusters[cfg.Name]; old != nil && reflect.DeepEqual(old.cfg, cfg) && old.acquire() {
				m.clusters[cfg.Name] = old
				m.order = append(m.order, cfg.Name)
				continue
			}
		}
		c, err := newCluster(cfg, m.reg, m.log, m.opts, old)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: %w", cfg.Name, err))
			continue
		}
		m.clusters[cfg.Name] = c
		m.order = append(m.order, cfg.Name)
	}
	return errors.Join(errs...)
}

// acquire takes a reference unless the cluster was already closed.
func (c *Cluster) acquire() bool {
	for {
		n := c.refs.Load()
		if n <= 0 {
			return false
		}
		if c.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (c *Cluster) releaseRef() {
	if c.refs.Add(-1) == 0 {
		c.close()
	}
}

// Cluster returns the named cluster, nil if unknown.
func (m *Manager) Cluster(name string) *Cluster { return m.clusters[name] }

// Close drops this manager's hold on its clusters; a cluster no other
// manager holds stops its goroutines and closes its connections (busy ones
// once their requests finish). Close is idempotent.
func (m *Manager) Close() {
	m.closeOnce.Do(func() {
		for _, c := range m.clusters {
			c.releaseRef()
		}
	})
}

// ClusterStatus is one cluster in the admin /clusters dump.
type ClusterStatus struct {
	Name              string           `json:"name"`
	Protocol          string           `json:"protocol"`
	LB                string           `json:"lb"`
	ActiveRequests    int64            `json:"active_requests"`
	PendingRequests   int64            `json:"pending_requests"`
	ActiveConnections int64            `json:"active_connections"`
	Endpoints         []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is one endpoint in ClusterStatus.
type EndpointStatus struct {
	Address      string            `json:"address"`
	Hostname     string            `json:"hostname,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Weight       int               `json:"weight"`
	Healthy      bool              `json:"healthy"`
	Ejected      bool              `json:"ejected"`
	EjectedUntil *time.Time        `json:"ejected_until,omitempty"`
	// Ejections is the outlier detector's count for the endpoint (it
	// sets the next ejection's length); ConsecutiveErrors the current run.
	Ejections         int   `json:"ejections,omitempty"`
	ConsecutiveErrors int32 `json:"consecutive_errors,omitempty"`
	ActiveRequests    int64 `json:"active_requests"`
}

// Snapshot describes every cluster, sorted by name.
func (m *Manager) Snapshot() []ClusterStatus {
	names := append([]string(nil), m.order...)
	sort.Strings(names)
	out := make([]ClusterStatus, 0, len(names))
	for _, name := range names {
		out = append(out, m.clusters[name].Status())
	}
	return out
}

// Status describes the cluster and its endpoints.
func (c *Cluster) Status() ClusterStatus {
	lb := c.cfg.LB
	if lb == "" {
		lb = "round_robin"
	}
	st := ClusterStatus{
		Name:              c.name,
		Protocol:          c.protocol,
		LB:                lb,
		ActiveRequests:    c.active.Load(),
		PendingRequests:   c.pending.Load(),
		ActiveConnections: c.limiter.active.Load(),
	}
	if hs := c.hosts.Load(); hs != nil {
		for _, e := range hs.hosts {
			es := EndpointStatus{
				Address:        e.addr,
				Hostname:       e.host,
				Labels:         e.labels,
				Weight:         e.weightOr1(),
				Healthy:        !e.unhealthy.Load(),
				Ejected:        e.ejected.Load(),
				ActiveRequests: e.active.Load(),
			}
			if c.outlier != nil {
				t, n := c.outlier.state(e)
				if es.Ejected && !t.IsZero() {
					es.EjectedUntil = &t
				}
				es.Ejections, es.ConsecutiveErrors = n, e.consecutive5xx.Load()
			}
			st.Endpoints = append(st.Endpoints, es)
		}
	}
	return st
}
