package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"
)

// TestHandshakes: ServerTLS against a mesh client over loopback, both
// ways verified by SPIFFE ID. (Clusters originate mesh TLS in
// runtime/upstream, with these certificates and verifiers.)
func TestHandshakes(t *testing.T) {
	p := newPKI(t, "example.org")
	sc, sk := p.issue("server", "spiffe://example.org/ns/a/sa/server", time.Time{}, time.Hour)
	cc, ck := p.issue("client", "spiffe://example.org/ns/a/sa/client", time.Time{}, time.Hour)
	cert, err := NewCertificate(sc, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewBundle(p.bundle(), nil)
	srv := ServerTLS(cert, &Verifier{Bundle: b, TrustDomain: "example.org"}, false, nil, nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Write([]byte("ok"))
			}()
		}
	}()
	clientCert, err := NewCertificate(cc, ck, nil)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(identity string) error {
		cfg := &tls.Config{
			GetClientCertificate: clientCert.GetClientCertificate,
			InsecureSkipVerify:   true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				id, err := (&Verifier{Bundle: b, TrustDomain: "example.org"}).Verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
				if err == nil && id.String() != identity {
					err = &PeerError{Reason: ReasonIdentity, Peer: id.String(), Msg: "expected " + identity}
				}
				return err
			},
		}
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		tc := tls.Client(c, cfg)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		return tc.Handshake()
	}
	if err := dial("spiffe://example.org/ns/a/sa/server"); err != nil {
		t.Fatalf("good identity: %v", err)
	}
	var pe *PeerError
	if err := dial("spiffe://example.org/ns/a/sa/other"); !errors.As(err, &pe) || pe.Reason != ReasonIdentity {
		t.Fatalf("wrong identity: %v", err)
	}
}
