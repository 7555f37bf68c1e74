package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Reasons a peer certificate is refused, as PeerError.Reason.
const (
	ReasonNoCertificate = "no_certificate"
	ReasonExpired       = "expired"
	ReasonNotYetValid   = "not_yet_valid"
	ReasonUntrusted     = "untrusted_issuer"
	ReasonNoID          = "no_spiffe_id"
	ReasonTrustDomain   = "wrong_trust_domain"
	ReasonIdentity      = "wrong_identity"
	ReasonInvalid       = "invalid"
)

// PeerError is a refused peer certificate.
type PeerError struct {
	Reason string
	Peer   string // the SPIFFE ID it claims, or its subject
	Msg    string
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("peer %s refused (%s): %s", e.Peer, e.Reason, e.Msg)
}

// Verifier checks a peer's X.509-SVID: the chain leads to a root of the
// bundle (read again when its file changes), the certificate is within its
// validity, and it carries one spiffe:// URI SAN in TrustDomain. Host names
// are not checked: mesh certificates name workloads, not hosts.
type Verifier struct {
	Bundle *Bundle
	// TrustDomain is the domain peers must belong to; "" accepts any
	// SPIFFE ID that chains to the bundle.
	TrustDomain string
	// AllowNoID accepts a certificate without a spiffe:// URI SAN (plain
	// client certificates on an edge listener); chain and validity are
	// still checked.
	AllowNoID bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks chain (leaf first) for usage (client or server auth) and
// returns the peer's ID.
func (v *Verifier) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) (ID, error) {
	if len(chain) == 0 {
		return ID{}, &PeerError{Reason: ReasonNoCertificate, Peer: "(anonymous)", Msg: "no client certificate presented"}
	}
	leaf := chain[0]
	id, idErr := IDFromCert(leaf)
	peer := id.String()
	if idErr != nil {
		peer = "subject=" + leaf.Subject.String()
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	// Validity first, so an expired certificate says so rather than the
	// less telling chain error crypto/x509 would give.
	if now.After(leaf.NotAfter) {
		return id, &PeerError{Reason: ReasonExpired, Peer: peer, Msg: fmt.Sprintf("certificate expired at %s (now %s)", leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if now.Before(leaf.NotBefore) {
		return id, &PeerError{Reason: ReasonNotYetValid, Peer: peer, Msg: fmt.Sprintf("certificate not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))}
	}
	opts := x509.VerifyOptions{
		Roots:         v.Bundle.Pool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		var ua x509.UnknownAuthorityError
		var ci x509.CertificateInvalidError
		switch {
		case errors.As(err, &ua):
			return id, &PeerError{Reason: ReasonUntrusted, Peer: peer, Msg: "not signed by a root of the trust bundle " + v.Bundle.Path()}
		case errors.As(err, &ci) && ci.Reason == x509.Expired:
			return id, &PeerError{Reason: ReasonExpired, Peer: peer, Msg: "a certificate of the chain is expired or not yet valid: " + err.Error()}
		}
		return id, &PeerError{Reason: ReasonInvalid, Peer: peer, Msg: err.Error()}
	}
	if idErr != nil && v.AllowNoID {
		return id, nil
	}
	if idErr != nil {
		return id, &PeerError{Reason: ReasonNoID, Peer: peer, Msg: idErr.Error()}
	}
	if v.TrustDomain != "" && id.TrustDomain != v.TrustDomain {
		return id, &PeerError{Reason: ReasonTrustDomain, Peer: peer, Msg: fmt.Sprintf("trust domain %q is not %q", id.TrustDomain, v.TrustDomain)}
	}
	return id, nil
}

// ServerTLS is the tls.Config of an mTLS listener: it serves cert, asks
// every client for a certificate (requires one unless permissive) and
// verifies what it gets with v, logging each refusal with the client's
// address. nextProtos are the ALPN ids.
func ServerTLS(cert *Certificate, v *Verifier, permissive bool, nextProtos []string, log *zap.Logger) *tls.Config {
	if log == nil {
		log = zap.NewNop()
	}
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cert.GetCertificate,
		NextProtos:     nextProtos,
		ClientAuth:     tls.RequireAnyClientCert,
	}
	if permissive {
		base.ClientAuth = tls.RequestClientCert
	}
	out := base.Clone()
	// Per connection, so the refusal log line names the client.
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		remote := ""
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 && permissive {
				return nil
			}
			_, err := v.Verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
			if err != nil {
				logRefusal(log, "mTLS client refused", remote, err)
			}
			return err
		}
		return c, nil
	}
	return out
}

func logRefusal(log *zap.Logger, msg, remote string, err error) {
	fields := []zap.Field{zap.String("remote", remote), zap.Error(err)}
	var pe *PeerError
	if errors.As(err, &pe) {
		fields = append(fields, zap.String("reason", pe.Reason), zap.String("peer", pe.Peer))
	}
	log.Warn(msg, fields...)
}
