package proxy

import (
	"fmt"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/route"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// Snapshot is everything one request needs from one config generation:
// route tables, clusters and filter factories. It is immutable; a reload
// builds a new one and swaps it in, and a request keeps the one it started
// with to the end.
type Snapshot struct {
	Config   *config.Config
	Upstream *upstream.Manager
	Filters  map[string]filter.Factory

	listeners map[string]*listenerRoutes
}

type listenerRoutes struct {
	table    *route.Table
	plugins  []string
	reqLimit int
	path     pathPolicy
	// streamIdle is the listener's stream_idle_timeout (0: none).
	streamIdle time.Duration
}

// routeInfo is what the proxy derives from a route once, when the route is
// built: the route's Derived.
type routeInfo struct {
	retry   retryPolicy
	plugins []string
	// factories are the plugins' factories, in plugins' order: a stream
	// makes its chain from them without a lookup by name.
	factories []filter.Factory
	stats     *routeStats
	mirror    *mirrorPolicy // nil without a mirror
	// clusters[i] is the snapshot's cluster that the route's backend i
	// names (nil for one the snapshot lacks), looked up once: a lookup
	// by name was a map access on every request.
	clusters []*upstream.Cluster
}

// cluster is the cluster backend b (one of rt's, as PickBackend returns
// them) names, from the snapshot up.
func (ri *routeInfo) cluster(rt *route.Route, b *config.Backend, up *upstream.Manager) *upstream.Cluster {
	if ri != nil && len(ri.clusters) == len(rt.Backends) {
		for i := range rt.Backends {
			if &rt.Backends[i] == b {
				return ri.clusters[i]
			}
		}
	}
	return up.Cluster(b.Cluster)
}

// NewSnapshot builds the route tables of every HTTP listener of cfg.
// filters holds a factory for every plugin the routes name.
func NewSnapshot(cfg *config.Config, up *upstream.Manager, filters map[string]filter.Factory, reg *stats.Registry) (*Snapshot, error) {
	return NewSnapshotWith(cfg, up, filters, reg, nil)
}

// NewSnapshotWith is NewSnapshot with native filters per listener name:
// they run first on every route of that listener, in order, before the
// listener's plugins and the route's (a sidecar's inbound side puts
// x-forwarded-client-cert handling and authorization there). Their
// Name()s must not be plugin names.
func NewSnapshotWith(cfg *config.Config, up *upstream.Manager, filters map[string]filter.Factory, reg *stats.Registry, native map[string][]filter.Factory) (*Snapshot, error) {
	nativeNames := map[string][]string{}
	if len(native) > 0 {
		all := make(map[string]filter.Factory, len(filters)+len(native))
		for k, v := range filters {
			all[k] = v
		}
		for l, fs := range native {
			for _, f := range fs {
				if prev, ok := all[f.Name()]; ok && prev != f {
					return nil, fmt.Errorf("listener %q: native filter %q has the name of another filter", l, f.Name())
				}
				all[f.Name()] = f
				nativeNames[l] = append(nativeNames[l], f.Name())
			}
		}
		filters = all
	}
	s := &Snapshot{
		Config:    cfg,
		Upstream:  up,
		Filters:   filters,
		listeners: map[string]*listenerRoutes{},
	}
	for _, l := range cfg.Listeners {
		if isTCPOnly(l) {
			continue
		}
		// What the proxy needs of a route is worked out once, as the
		// listener's table builds it, and travels with the route Match
		// returns (route.Route.Derived).
		derive := func(rt *route.Route) (any, error) {
			plugins := append(append(append([]string(nil), nativeNames[l.Name]...), l.Plugins...), rt.Plugins...)
			factories := make([]filter.Factory, len(plugins))
			for i, p := range plugins {
				fac, ok := filters[p]
				if !ok {
					return nil, fmt.Errorf("plugin %q is not loaded", p)
				}
				factories[i] = fac
			}
			var clusters []*upstream.Cluster
			if up != nil {
				clusters = make([]*upstream.Cluster, len(rt.Backends))
				for i := range rt.Backends {
					clusters[i] = up.Cluster(rt.Backends[i].Cluster)
				}
			}
			return &routeInfo{
				clusters:  clusters,
				retry:     compileRetry(rt.Retry),
				plugins:   plugins,
				factories: factories,
				stats:     newRouteStats(reg, rt.Name),
				mirror:    newMirrorPolicy(reg, rt.Route),
			}, nil
		}
		t, err := route.NewTableWith(cfg, l.Routes, derive)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
		limit := int(l.MaxRequestBodyBuffer)
		if limit <= 0 {
			limit = 1 << 20
		}
		lr := &listenerRoutes{table: t, plugins: l.Plugins, reqLimit: limit, path: newPathPolicy(l)}
		if l.StreamIdleTimeout != nil {
			lr.streamIdle = l.StreamIdleTimeout.D()
		}
		s.listeners[l.Name] = lr
	}
	return s, nil
}

// routeInfoOf is what the snapshot derived from rt when its table was built.
func routeInfoOf(rt *route.Route) *routeInfo {
	ri, _ := rt.Derived.(*routeInfo)
	return ri
}

func isTCPOnly(l config.Listener) bool {
	for _, p := range l.Protocols {
		if p != "tcp" {
			return false
		}
	}
	return len(l.Protocols) > 0
}

// routeStats are a route's metric handles, looked up once so the request
// path only does atomic adds.
type routeStats struct {
	byClass [6]*stats.Counter // 1xx..5xx, and [0] for no response
	latency *stats.Histogram
	retries *stats.Counter
	// idleTimeouts counts streams the stream idle timeout ended.
	idleTimeouts *stats.Counter
}

func newRouteStats(reg *stats.Registry, name string) *routeStats {
	rs := &routeStats{}
	classes := [6]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}
	for i, c := range classes {
		rs.byClass[i] = reg.Counter("sluice_http_requests_total", "Requests handled, by route and status class.", "route", name, "code_class", c)
	}
	rs.latency = reg.Histogram("sluice_http_request_duration_seconds", "Time from request start to the end of the response, by route.", nil, "route", name)
	rs.retries = reg.Counter("sluice_http_retries_total", "Retried upstream tries, by route.", "route", name)
	rs.idleTimeouts = reg.Counter("sluice_http_stream_idle_timeouts_total", "Streams ended by the stream idle timeout (no progress either way), by route.", "route", name)
	return rs
}

func (rs *routeStats) record(status int, seconds float64) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	rs.byClass[c].Inc()
	rs.latency.Observe(seconds)
}
