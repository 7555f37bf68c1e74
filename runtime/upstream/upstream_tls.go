package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// tlsSource is a cluster's TLS client settings with its files watched:
// the client certificate, key and CA bundle are re-read when their mtime or
// size changes (checked at most once per reloadCheck, on a new handshake),
// so rotating them is a file copy and open connections are not touched.
//
// Verification is done here, not by crypto/tls, so the CA pool can change
// under a live tls.Config, and so peers can be checked by SPIFFE identity:
//
//   - identity set: the chain must lead to the CA bundle and the leaf must
//     carry that URI SAN; host names are not checked (mesh certificates
//     name workloads, not hosts), as Istio's ISTIO_MUTUAL does.
//   - a sidecar-generated cluster without identity: chain to the bundle and
//     a spiffe:// URI SAN in our own certificate's trust domain.
//   - otherwise: the usual chain and host name check against server_name,
//     else the endpoint's DNS name or IP.
type tlsSource struct {
	cfg         config.UpstreamTLS
	mesh        bool
	log         *zap.Logger
	reloadCheck time.Duration

	mu          sync.Mutex
	checked     time.Time
	stamps      [3]fileStamp // cert, key, ca
	cert        *tls.Certificate
	roots       *x509.CertPool // nil: system roots
	trustDomain string         // from our own certificate's URI SAN
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newTLSSource(c *config.UpstreamTLS, generated bool, log *zap.Logger, reloadCheck time.Duration) (*tlsSource, error) {
	s := &tlsSource{log: log, reloadCheck: reloadCheck}
	if c != nil {
		s.cfg = *c
		s.mesh = generated && c.Cert != ""
	}
	if (s.cfg.Cert == "") != (s.cfg.Key == "") {
		return nil, errors.New("tls.cert and tls.key must be set together")
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.checked = time.Now()
	return s, nil
}

func stampOf(path string) (fileStamp, error) {
	if path == "" {
		return fileStamp{}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: st.ModTime(), size: st.Size()}, nil
}

// load reads every file; on error nothing changes.
func (s *tlsSource) load() error {
	var stamps [3]fileStamp
	for i, p := range []string{s.cfg.Cert, s.cfg.Key, s.cfg.CA} {
		st, err := stampOf(p)
		if err != nil {
			return fmt.Errorf("%s: %w", [...]string{"tls.cert", "tls.key", "tls.ca"}[i], err)
		}
		stamps[i] = st
	}
	var cert *tls.Certificate
	trustDomain := ""
	if s.cfg.Cert != "" {
		pair, err := tls.LoadX509KeyPair(s.cfg.Cert, s.cfg.Key)
		if err != nil {
			return fmt.Errorf("loading tls.cert/tls.key: %w", err)
		}
		cert = &pair
		if leaf := pair.Leaf; leaf != nil {
			for _, u := range leaf.URIs {
				if u.Scheme == "spiffe" {
					trustDomain = u.Host
				}
			}
		}
	}
	var roots *x509.CertPool
	if s.cfg.CA != "" {
		pem, err := os.ReadFile(s.cfg.CA)
		if err != nil {
			return fmt.Errorf("reading tls.ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls.ca %s: no PEM certificate found", s.cfg.CA)
		}
	}
	s.stamps, s.cert, s.roots, s.trustDomain = stamps, cert, roots, trustDomain
	return nil
}

// current returns the certificate and roots to use now, reloading changed
// files first. A file caught mid-copy fails to parse; the old material
// stays and the next handshake tries again.
func (s *tlsSource) current() (*tls.Certificate, *x509.CertPool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.checked) >= s.reloadCheck {
		s.checked = now
		changed := false
		for i, p := range []string{s.cfg.Cert, s.cfg.Key, s.cfg.CA} {
			if st, err := stampOf(p); err == nil && st != s.stamps[i] {
				changed = true
			}
		}
		if changed {
			if err := s.load(); err != nil {
				s.log.Warn("upstream TLS files changed but could not be loaded; keeping the previous ones", zap.Error(err))
			} else {
				s.log.Info("upstream TLS files reloaded")
			}
		}
	}
	return s.cert, s.roots, s.trustDomain
}

// clientConfig is the tls.Config for one dial. serverName is the
// endpoint's DNS name or IP, used for SNI and the host name check unless
// tls.server_name overrides it. It is captured here because crypto/tls does
// not report an IP server name in ConnectionState.
func (s *tlsSource) clientConfig(serverName string) *tls.Config {
	name := s.cfg.ServerName
	if name == "" {
		name = serverName
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: name,
		// Verification happens in VerifyConnection, with the current
		// roots; crypto/tls's own check would pin the roots at build time.
		InsecureSkipVerify: true,
	}
	if s.cfg.Cert != "" {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _, _ := s.current()
			return cert, nil
		}
	}
	if !s.cfg.InsecureSkipVerify {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return s.verify(cs, name) }
	}
	return cfg
}

func (s *tlsSource) verify(cs tls.ConnectionState, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("upstream presented no certificate")
	}
	_, roots, trustDomain := s.current()
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if s.cfg.Identity == "" && !s.mesh {
		opts.DNSName = serverName
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("verifying upstream certificate: %w", err)
	}
	switch {
	case s.cfg.Identity != "":
		for _, u := range leaf.URIs {
			if u.String() == s.cfg.Identity {
				return nil
			}
		}
		return fmt.Errorf("upstream identity is %s, want %s", uriSANs(leaf.URIs), s.cfg.Identity)
	case s.mesh:
		for _, u := range leaf.URIs {
			if u.Scheme == "spiffe" && (trustDomain == "" || u.Host == trustDomain) {
				return nil
			}
		}
		return fmt.Errorf("upstream identity is %s, want a spiffe://%s/ ID", uriSANs(leaf.URIs), trustDomain)
	}
	return nil
}

func uriSANs(us []*url.URL) string {
	if len(us) == 0 {
		return "(no URI SAN)"
	}
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}
