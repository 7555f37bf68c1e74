package server

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/l4"
	"github.com/sluice-proxy/sluice/runtime/listen"
)

// startTCP opens a tcp listener. Its cluster and plugins are looked up in
// the snapshot current when each connection arrives, so a reload changes
// them for new connections while open ones keep theirs.
func (s *Server) startTCP(lc config.Listener, access *zap.Logger) (*l4.Listener, error) {
	opts := l4.Options{
		Listener: lc,
		Resolve:  func() (*l4.Resolution, error) { return s.resolveTCP(lc.Name) },
		Log:      s.log.Named("l4"),
		Access:   access,
		// The TCP listeners share the downstream connection cap.
		WrapListener: s.conns.Listener,
	}
	if lc.TLS != nil {
		cfg, err := listen.ServerTLS(lc.TLS, nil, s.log.Named("listen"))
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
		}
		opts.TLS = cfg
	}
	l, err := l4.Listen(opts)
	if err != nil {
		return nil, err
	}
	l.Serve()
	return l, nil
}

func (s *Server) resolveTCP(name string) (*l4.Resolution, error) {
	snap := s.snap.Load()
	var lc *config.Listener
	for i := range snap.Config.Listeners {
		if snap.Config.Listeners[i].Name == name {
			lc = &snap.Config.Listeners[i]
		}
	}
	if lc == nil {
		return nil, fmt.Errorf("listener %q is gone from the config", name)
	}
	// The snapshot's cluster, as an HTTP route's: one load balancer, one
	// TLS set-up, one max_connections and outlier detector per cluster.
	uc := snap.Upstream.Cluster(lc.Cluster)
	if uc == nil {
		return nil, fmt.Errorf("listener %q: cluster %q not found", name, lc.Cluster)
	}
	res := &l4.Resolution{Upstream: uc, ClusterMetadata: uc.Config().Metadata}
	for _, pn := range lc.Plugins {
		if u, ok := snap.Filters[pn].(*unloaded); ok {
			// Its module is still being fetched, or failed: the failure
			// policy decides, as on an HTTP route.
			if u.failOpen {
				continue
			}
			return nil, fmt.Errorf("listener %q: plugin %q has no version loaded (failure = closed): %s", name, pn, u.why)
		}
		nf, ok := snap.Filters[pn].(filter.NetworkFactory)
		if !ok {
			return nil, fmt.Errorf("listener %q: plugin %q is not a loaded Wasm plugin", name, pn)
		}
		res.Filters = append(res.Filters, nf)
	}
	return res, nil
}
