package l4

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	up "github.com/sluice-proxy/sluice/runtime/upstream"
)

// ClusterDialer dials a cluster's endpoints in turn, with TLS when
// the cluster has it: with an identity (a sidecar [[services]] entry or
// tls.identity), the peer is verified as mesh.ClientTLS does (chain to
// tls.ca, that SPIFFE ID) and tls.cert/tls.key are presented; otherwise
// the usual chain and host name check against tls.ca or the system roots.
// Failed endpoints are skipped until one answers.
type ClusterDialer struct {
	name    string
	hosts   func() []up.Host
	timeout time.Duration
	tls     func(host string) *tls.Config
	next    atomic.Uint64
}

// NewClusterDialer builds the dialer of c. hosts gives the endpoints to
// dial at each connection: pass the upstream cluster's Hosts, so that a
// TCP cluster has the discovery of an HTTP one (DNS A/AAAA and SRV
// re-resolved, a watched endpoints_file, ejected and unhealthy endpoints
// skipped). nil dials c's static endpoints as written.
func NewClusterDialer(c *config.Cluster, hosts func() []up.Host, log *zap.Logger) (*ClusterDialer, error) {
	d := &ClusterDialer{name: c.Name, timeout: c.ConnectTimeout.D(), hosts: hosts}
	if d.timeout <= 0 {
		d.timeout = 5 * time.Second
	}
	if hosts == nil {
		var static []up.Host
		for _, e := range c.Endpoints {
			static = append(static, up.Host{Address: e})
		}
		for _, e := range c.LabeledEndpoints {
			static = append(static, up.Host{Address: e.Address})
		}
		if len(static) == 0 {
			return nil, fmt.Errorf("cluster %q: no static endpoints to dial", c.Name)
		}
		d.hosts = func() []up.Host { return static }
	}
	if t := c.TLS; t != nil {
		var cert *mesh.Certificate
		if t.Cert != "" {
			var err error
			if cert, err = mesh.NewCertificate(t.Cert, t.Key, log); err != nil {
				return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
			}
		}
		switch {
		case t.Identity != "" || (c.Generated && cert != nil):
			cfg, err := mesh.UpstreamTLS(t, log)
			if err != nil {
				return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
			}
			d.tls = func(string) *tls.Config { return cfg }
		default:
			var roots *x509.CertPool
			if t.CA != "" {
				pem, err := config.ReadFile("tls.ca", t.CA, config.MaxNamedFileBytes)
				if err != nil {
					return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
				}
				roots = x509.NewCertPool()
				if !roots.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("cluster %q: tls.ca %s: no PEM certificate", c.Name, t.CA)
				}
			}
			d.tls = func(host string) *tls.Config {
				cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: host, InsecureSkipVerify: t.InsecureSkipVerify}
				if t.ServerName != "" {
					cfg.ServerName = t.ServerName
				}
				if cert != nil {
					cfg.GetClientCertificate = cert.GetClientCertificate
				}
				return cfg
			}
		}
	}
	return d, nil
}

// Dial implements Upstream.
func (d *ClusterDialer) Dial(ctx context.Context) (net.Conn, string, error) {
	hosts := d.hosts()
	if len(hosts) == 0 {
		return nil, "", fmt.Errorf("cluster %q: no endpoints (discovery has found none yet)", d.name)
	}
	var errs []error
	start := d.next.Add(1)
	for i := range len(hosts) {
		h := hosts[(start+uint64(i))%uint64(len(hosts))]
		c, err := d.dial(ctx, h)
		if err == nil {
			return c, h.Address, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", fmt.Errorf("cluster %q: %w", d.name, errors.Join(errs...))
}

func (d *ClusterDialer) dial(ctx context.Context, h up.Host) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var nd net.Dialer
	addr := h.Address
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil || d.tls == nil {
		return c, err
	}
	// The server name is the DNS name the address came from, else its host.
	host := h.Hostname
	if host == "" {
		host, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(c, d.tls(host))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("tls to %s: %w", addr, err)
	}
	return tc, nil
}
