package listen

import (
	"crypto/tls"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/mesh"
)

// serverTLS builds the listener's TLS config; nextProtos are its ALPN ids.
// The certificate pair, and the client CA bundle when there is one, are
// files read again when they change (checked at most once a second, on a
// handshake), so rotation is a file copy and no open connection drops.
//
// With a client CA, peers are verified by mesh.Verifier rather than by
// crypto/tls (whose pool is fixed when the config is built): the chain must
// lead to the bundle as it is now, and when this listener's own
// certificate carries a SPIFFE ID, the peer's must be in the same trust
// domain. Every refusal is logged with its reason and the client address.
func serverTLS(t *config.TLS, nextProtos []string, log *zap.Logger) (*tls.Config, error) {
	cert, err := mesh.NewCertificate(t.Cert, t.Key, log)
	if err != nil {
		return nil, err
	}
	if t.ClientCA == "" {
		return &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: cert.GetCertificate,
			NextProtos:     nextProtos,
		}, nil
	}
	bundle, err := mesh.NewBundle(t.ClientCA, log)
	if err != nil {
		return nil, err
	}
	own := cert.ID()
	v := &mesh.Verifier{Bundle: bundle, TrustDomain: own.TrustDomain, AllowNoID: own.IsZero()}
	permissive := t.RequireClientCert != nil && !*t.RequireClientCert
	return mesh.ServerTLS(cert, v, permissive, nextProtos, log), nil
}

// ServerTLS is the TLS config a listener with t would use, for listeners
// served elsewhere (runtime/l4's TCP listeners).
func ServerTLS(t *config.TLS, nextProtos []string, log *zap.Logger) (*tls.Config, error) {
	return serverTLS(t, nextProtos, log)
}
