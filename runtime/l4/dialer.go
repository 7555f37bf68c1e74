package l4

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/mesh"
)

// ClusterDialer dials a cluster's static endpoints in turn, with TLS when
// the cluster has it: with an identity (a sidecar [[services]] entry or
// tls.identity), the peer is verified as mesh.ClientTLS does (chain to
// tls.ca, that SPIFFE ID) and tls.cert/tls.key are presented; otherwise
// the usual chain and host name check against tls.ca or the system roots.
// Failed endpoints are skipped until one answers.
type ClusterDialer struct {
	name      string
	endpoints []string
	timeout   time.Duration
	tls       func(host string) *tls.Config
	next      atomic.Uint64
}

// NewClusterDialer builds the dialer of c. Only static endpoints are
// dialed; DNS and file endpoints are the HTTP cluster manager's.
func NewClusterDialer(c *config.Cluster, log *zap.Logger) (*ClusterDialer, error) {
	d := &ClusterDialer{name: c.Name, timeout: c.ConnectTimeout.D()}
	if d.timeout <= 0 {
		d.timeout = 5 * time.Second
	}
	d.endpoints = append(d.endpoints, c.Endpoints...)
	for _, e := range c.LabeledEndpoints {
		d.endpoints = append(d.endpoints, e.Address)
	}
	if len(d.endpoints) == 0 {
		return nil, fmt.Errorf("cluster %q: a tcp listener needs static endpoints", c.Name)
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
				pem, err := os.ReadFile(t.CA)
				if err != nil {
					return nil, fmt.Errorf("cluster %q: tls.ca: %w", c.Name, err)
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
	var errs []error
	start := d.next.Add(1)
	for i := range len(d.endpoints) {
		addr := d.endpoints[(start+uint64(i))%uint64(len(d.endpoints))]
		c, err := d.dial(ctx, addr)
		if err == nil {
			return c, addr, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", fmt.Errorf("cluster %q: %w", d.name, errors.Join(errs...))
}

func (d *ClusterDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil || d.tls == nil {
		return c, err
	}
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(c, d.tls(host))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("tls to %s: %w", addr, err)
	}
	return tc, nil
}
