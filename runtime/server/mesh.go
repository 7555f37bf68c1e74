package server

import (
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/proxy"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// newSnapshot builds a snapshot with the sidecar's native filters first on
// its listeners: on the inbound side x-forwarded-client-cert, the peer's
// identity as properties, traceparent, then authorization ([[authorization]]:
// CUSTOM plugins, then DENY/ALLOW); on the outbound side the client's
// x-forwarded-client-cert removed and traceparent.
func (s *Server) newSnapshot(cfg *config.Config, up *upstream.Manager, plugins *pluginSet) (*proxy.Snapshot, error) {
	factories := plugins.factories()
	native, err := s.nativeFilters(cfg, factories)
	if err != nil {
		return nil, err
	}
	return proxy.NewSnapshotWith(cfg, up, factories, s.reg, native)
}

func (s *Server) nativeFilters(cfg *config.Config, plugins map[string]filter.Factory) (map[string][]filter.Factory, error) {
	var native map[string][]filter.Factory
	// One factory of each kind, shared by the listeners of a direction.
	var inbound []filter.Factory
	outbound := mesh.NewHeadersFactory(false, s.localID)
	outbound.Metrics = s.meshMetrics
	outbound.ClusterIdentity = map[string]string{}
	for _, c := range cfg.Clusters {
		if c.TLS != nil && c.TLS.Identity != "" {
			outbound.ClusterIdentity[c.Name] = c.TLS.Identity
		}
	}
	for _, l := range cfg.Listeners {
		if l.Direction != "inbound" && l.Direction != "outbound" || tcpListener(l) {
			continue
		}
		if native == nil {
			native = map[string][]filter.Factory{}
		}
		if l.Direction == "outbound" {
			native[l.Name] = []filter.Factory{outbound}
			continue
		}
		if inbound == nil {
			authz, err := mesh.NewAuthorizer(cfg.Authorization, plugins)
			if err != nil {
				return nil, err
			}
			if authz != nil {
				authz.Metrics = s.meshMetrics
			}
			h := mesh.NewHeadersFactory(true, s.localID)
			h.Metrics = s.meshMetrics
			inbound = append([]filter.Factory{h}, authz.Factories()...)
		}
		native[l.Name] = inbound
	}
	return native, nil
}

// localID is this workload's SPIFFE ID now ("" without [identity]).
func (s *Server) localID() string {
	if s.identity == nil {
		return ""
	}
	return s.identity.IDString()
}
