package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/mesh"
)

// tlsSource is a cluster's TLS client settings. The client certificate and
// the CA bundle are mesh.Certificate and mesh.Bundle, re-read when their
// files change, so rotating them is a file copy and open connections are
// not touched.
//
// Verification is done here, not by crypto/tls, so the roots can change
// under a live config, and so peers can be checked by SPIFFE identity
// (mesh.Verifier, which names the reason of each refusal):
//
//   - tls.identity set: the chain must lead to the bundle and the peer's
//     SPIFFE ID must be exactly that; host names are not checked (mesh
//     certificates name workloads, not hosts), as Istio's ISTIO_MUTUAL.
//   - a sidecar-generated cluster without identity: chain to the bundle
//     and a SPIFFE ID in our own certificate's trust domain.
//   - otherwise: the usual chain and host name check against server_name,
//     else the endpoint's DNS name or IP.
type tlsSource struct {
	cfg    config.UpstreamTLS
	cert   *mesh.Certificate // nil: no client certificate
	bundle *mesh.Bundle      // nil: system roots
	spiffe *mesh.Verifier    // set when peers are checked by SPIFFE ID
}

func newTLSSource(c *config.UpstreamTLS, generated bool, log *zap.Logger) (*tlsSource, error) {
	s := &tlsSource{}
	if c != nil {
		s.cfg = *c
	}
	if (s.cfg.Cert == "") != (s.cfg.Key == "") {
		return nil, errors.New("tls.cert and tls.key must be set together")
	}
	var err error
	if s.cfg.Cert != "" {
		if s.cert, err = mesh.NewCertificate(s.cfg.Cert, s.cfg.Key, log); err != nil {
			return nil, fmt.Errorf("tls.cert/tls.key: %w", err)
		}
	}
	if s.cfg.CA != "" {
		if s.bundle, err = mesh.NewBundle(s.cfg.CA, log); err != nil {
			return nil, fmt.Errorf("tls.ca: %w", err)
		}
	}
	if s.cfg.Identity != "" || generated && s.cert != nil {
		if s.bundle == nil {
			return nil, errors.New("tls.identity needs tls.ca, the trust bundle peers are checked against")
		}
		v := &mesh.Verifier{Bundle: s.bundle}
		if s.cfg.Identity != "" {
			id, err := mesh.ParseID(s.cfg.Identity)
			if err != nil {
				return nil, fmt.Errorf("tls.identity: %w", err)
			}
			v.TrustDomain = id.TrustDomain
		} else {
			v.TrustDomain = s.cert.ID().TrustDomain
		}
		s.spiffe = v
	}
	return s, nil
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
	if s.cert != nil {
		cfg.GetClientCertificate = s.cert.GetClientCertificate
	}
	if !s.cfg.InsecureSkipVerify {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return s.verify(cs, name) }
	}
	return cfg
}

func (s *tlsSource) verify(cs tls.ConnectionState, serverName string) error {
	if s.spiffe != nil {
		id, err := s.spiffe.Verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
		if err == nil && s.cfg.Identity != "" && id.String() != s.cfg.Identity {
			err = &mesh.PeerError{Reason: mesh.ReasonIdentity, Peer: id.String(), Msg: "expected " + s.cfg.Identity}
		}
		return err
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("upstream presented no certificate")
	}
	opts := x509.VerifyOptions{
		Intermediates: x509.NewCertPool(),
		DNSName:       serverName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if s.bundle != nil {
		opts.Roots = s.bundle.Pool()
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("verifying upstream certificate: %w", err)
	}
	return nil
}
