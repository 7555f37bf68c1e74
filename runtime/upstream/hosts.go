package upstream

// Host is one endpoint of a cluster as a caller that connects by itself
// (a TCP listener, Envoy's tcp_proxy) sees it.
type Host struct {
	// Address is the "ip:port" to dial ("host:port" when not resolved).
	Address string
	// Hostname is the DNS name Address was resolved from, for TLS SNI;
	// "" for a literal IP.
	Hostname string
}

// Hosts returns the cluster's endpoints now, as its discovery keeps them
// (static, DNS A/AAAA and SRV re-resolved every dns_refresh, a watched
// endpoints_file): the available ones (not failing health checks, not
// ejected) in discovery order; all of them when none is, as the load
// balancers' panic mode does. The slice is the caller's.
func (c *Cluster) Hosts() []Host {
	hs := c.hosts.Load()
	if hs == nil {
		return nil
	}
	out := make([]Host, 0, len(hs.hosts))
	for _, e := range hs.hosts {
		if e.available() {
			out = append(out, Host{Address: e.addr, Hostname: e.host})
		}
	}
	if len(out) == 0 {
		for _, e := range hs.hosts {
			out = append(out, Host{Address: e.addr, Hostname: e.host})
		}
	}
	return out
}
