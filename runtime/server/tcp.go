package server

import (
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/l4"
	"github.com/sluice-proxy/sluice/runtime/listen"
	"github.com/sluice-proxy/sluice/runtime/proxy"
	"github.com/sluice-proxy/sluice/runtime/upstream"
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

// tcpDialers caches one dialer per cluster for one snapshot.
type tcpDialers struct {
	mu      sync.Mutex
	snap    *proxy.Snapshot
	dialers map[string]*l4.ClusterDialer
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
	d, err := s.tcp.dialer(snap, lc.Cluster, s.log.Named("l4"))
	if err != nil {
		return nil, err
	}
	res := &l4.Resolution{Upstream: d}
	for i := range snap.Config.Clusters {
		if c := &snap.Config.Clusters[i]; c.Name == lc.Cluster {
			res.ClusterMetadata = c.Metadata
		}
	}
	for _, pn := range lc.Plugins {
		nf, ok := snap.Filters[pn].(filter.NetworkFactory)
		if !ok {
			return nil, fmt.Errorf("listener %q: plugin %q is not a loaded Wasm plugin", name, pn)
		}
		res.Filters = append(res.Filters, nf)
	}
	return res, nil
}

func (t *tcpDialers) dialer(snap *proxy.Snapshot, cluster string, log *zap.Logger) (*l4.ClusterDialer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.snap != snap {
		t.snap, t.dialers = snap, map[string]*l4.ClusterDialer{}
	}
	if d, ok := t.dialers[cluster]; ok {
		return d, nil
	}
	for i := range snap.Config.Clusters {
		if c := &snap.Config.Clusters[i]; c.Name == cluster {
			// The snapshot's upstream cluster keeps the endpoints current
			// (DNS, SRV, endpoints file, health and ejections).
			var hosts func() []upstream.Host
			if uc := snap.Upstream.Cluster(cluster); uc != nil {
				hosts = uc.Hosts
			}
			d, err := l4.NewClusterDialer(c, hosts, log)
			if err != nil {
				return nil, err
			}
			t.dialers[cluster] = d
			return d, nil
		}
	}
	return nil, fmt.Errorf("cluster %q not found", cluster)
}
