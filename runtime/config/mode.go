package config

import (
	"fmt"
	"slices"
)

// Names of what the mode presets generate. Routes, clusters and listeners
// named in the file must not reuse them (Validate reports duplicates).
const (
	EdgeListenerName     = "public"
	InboundListenerName  = "inbound"
	OutboundListenerName = "outbound"
	InboundRouteName     = "inbound"
	InboundClusterName   = "inbound|app"
	// OutboundPrefix + service name names a service's route and cluster.
	OutboundPrefix = "outbound|"
)

// Sidecar defaults, Istio's ports.
const (
	DefaultSidecarInbound  = "0.0.0.0:15006"
	DefaultSidecarOutbound = "127.0.0.1:15001"
	DefaultEdgeAddress     = "127.0.0.1:8080"
)

// ApplyMode sets Mode, adds the listeners, routes and clusters its preset
// implies (replacing whatever an earlier ApplyMode generated, so calling it
// again with another mode is safe), fills in defaults and returns
// Validate's verdict. Load calls it with the file's mode, and LoadWithMode
// with the flag's: prefer those. Like every other mutation it is only
// allowed before the Config is published to the runtime.
//
//   - "edge" (or ""): when the file has no listener, one "public" listener
//     on 127.0.0.1:8080 speaking http1 and h2c.
//   - "sidecar": from [sidecar], an "inbound" listener (mTLS from
//     [identity]; plain text only with peer_authentication = "disable")
//     whose one route forwards everything to the cluster "inbound|app"
//     (sidecar.app), and an "outbound" listener whose
//     routes, one per [[services]] entry, match the service name as Host
//     (with or without a port) and send to the cluster "outbound|NAME".
func (c *Config) ApplyMode(mode string) error {
	c.Listeners = slices.DeleteFunc(c.Listeners, func(l Listener) bool { return l.Generated })
	c.Routes = slices.DeleteFunc(c.Routes, func(r Route) bool { return r.Generated })
	c.Clusters = slices.DeleteFunc(c.Clusters, func(cl Cluster) bool { return cl.Generated })
	if mode == "" {
		mode = "edge"
	}
	c.Mode = mode
	switch mode {
	case "edge":
		if len(c.Listeners) == 0 {
			c.Listeners = append(c.Listeners, Listener{
				Name: EdgeListenerName, Address: DefaultEdgeAddress,
				Protocols: []string{"http1", "h2c"}, Generated: true,
			})
		}
	case "sidecar":
		c.applySidecar()
	default:
		return &Error{Problems: []Problem{{
			File: c.Path, Line: c.src.Line("mode"), Key: "mode",
			Msg: fmt.Sprintf("unknown mode %q; want \"edge\" or \"sidecar\"", mode),
		}}}
	}
	// Defaults fill only what is unset, so running them again over the
	// file's items changes nothing; the new generated items need them.
	c.applyDefaults()
	return c.Validate()
}

func (c *Config) applySidecar() {
	var sc Sidecar
	if c.Sidecar != nil {
		sc = *c.Sidecar
	}
	if sc.Inbound == "" {
		sc.Inbound = DefaultSidecarInbound
	}
	if sc.Outbound == "" {
		sc.Outbound = DefaultSidecarOutbound
	}
	if sc.PeerAuthentication == "" {
		sc.PeerAuthentication = "strict"
	}
	if sc.AppProtocol == "" {
		sc.AppProtocol = "http1"
	}
	c.Sidecar = &sc

	in := Listener{
		Name: InboundListenerName, Address: sc.Inbound, Direction: "inbound",
		Protocols: []string{"http1", "h2c"}, Routes: []string{InboundRouteName}, Generated: true,
	}
	if id := c.Identity; id != nil && sc.PeerAuthentication != "disable" {
		// Permissive accepts peers without a certificate, as Istio's
		// PeerAuthentication PERMISSIVE does, so the handshake must not
		// insist on one.
		require := sc.PeerAuthentication != "permissive"
		in.TLS = &TLS{Cert: id.Cert, Key: id.Key, ClientCA: id.TrustBundle, RequireClientCert: &require}
		in.Protocols = []string{"http1", "h2"}
	}
	c.Listeners = append(c.Listeners, in)
	app := Cluster{Name: InboundClusterName, Protocol: appClusterProtocol(sc.AppProtocol), Generated: true}
	if sc.App != "" {
		app.Endpoints = []string{sc.App}
	}
	c.Clusters = append(c.Clusters, app)
	c.Routes = append(c.Routes, Route{
		Name: InboundRouteName, Backends: []Backend{{Cluster: InboundClusterName, Weight: 1}},
		Generated: true,
	})

	out := Listener{
		Name: OutboundListenerName, Address: sc.Outbound, Direction: "outbound",
		Protocols: []string{"http1", "h2c"}, Routes: []string{}, Generated: true,
	}
	services := make(map[string]bool, len(c.Services))
	for _, s := range c.Services {
		services[s.Name] = true
	}
	for _, s := range c.Services {
		name := OutboundPrefix + s.Name
		cl := Cluster{
			Name: name, Endpoints: slices.Clone(s.Endpoints), DNS: s.DNS, EndpointsFile: s.EndpointsFile,
			Protocol: s.Protocol, LB: s.LB, Limits: s.Limits, Outlier: s.Outlier, Generated: true,
		}
		if cl.LB == "" {
			// Istio's default for mesh traffic: the endpoint with the
			// fewest requests in flight (of two picked at random).
			cl.LB = "least_request"
		}
		if id := c.Identity; id != nil {
			cl.TLS = &UpstreamTLS{CA: id.TrustBundle, Cert: id.Cert, Key: id.Key, Identity: s.Identity}
			if cl.Protocol == "" {
				// One multiplexed HTTP/2 connection per peer, as the sidecar
				// contract says (peers' inbound listeners offer h2 by ALPN).
				// protocol = "downstream" keeps the app's HTTP version
				// instead (Istio's default): per plain HTTP/1.1 request it
				// costs about half the CPU and latency (bench/mesh.sh),
				// since Go's HTTP/2 client and server hand each request
				// between goroutines.
				cl.Protocol = "h2"
			}
		}
		c.Clusters = append(c.Clusters, cl)
		r := Route{
			Name:             name,
			Match:            Match{Hosts: append([]string{s.Name}, s.Hosts...)},
			Timeout:          s.Timeout,
			Retry:            s.Retry,
			Mirror:           s.Mirror,
			MirrorPercentage: s.MirrorPercentage,
			Backends:         []Backend{{Cluster: name, Weight: 1}},
			Generated:        true,
		}
		if services[s.Mirror] {
			// A service's mirror names another service, as Istio's mirror
			// names a host; a name no service has is a cluster's.
			r.Mirror = OutboundPrefix + s.Mirror
		}
		c.Routes = append(c.Routes, r)
		out.Routes = append(out.Routes, name)
	}
	c.Listeners = append(c.Listeners, out)
}

// PeerAuthentications are the values of sidecar.peer_authentication.
var PeerAuthentications = []string{"strict", "permissive", "disable"}

// AppProtocols are the values of sidecar.app_protocol.
var AppProtocols = []string{"http1", "h2c", "grpc"}

// appClusterProtocol is the cluster protocol that reaches an app speaking
// p: gRPC rides HTTP/2 without TLS. An unknown p is kept, for Validate to
// report against sidecar.app_protocol.
func appClusterProtocol(p string) string {
	if p == "grpc" {
		return "h2c"
	}
	return p
}
