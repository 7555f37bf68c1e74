package mesh

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func TestCAIssueSVID(t *testing.T) {
	p := newPKI(t, "example.org")
	cert, key := p.issue("orders", "spiffe://example.org/ns/default/sa/orders", time.Time{}, time.Hour)
	leaf := leafOf(t, cert, key)[0]
	id, err := IDFromCert(leaf)
	if err != nil || id.String() != "spiffe://example.org/ns/default/sa/orders" {
		t.Fatalf("id %v, %v", id, err)
	}
	if id.Namespace() != "default" || namespaceOf(id.String()) != "default" || namespaceOf("spiffe://td") != "" {
		t.Errorf("namespace %q", id.Namespace())
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("usage %v: %v", u, err)
		}
	}
	// The root reloads from disk and keeps its trust domain.
	ca, err := LoadCA(p.dir)
	if err != nil || ca.TrustDomain != "example.org" {
		t.Fatalf("LoadCA: %v, %q", err, ca.TrustDomain)
	}
	if _, _, err := ca.Issue(ID{TrustDomain: "other.org", Path: "/x"}, time.Time{}, time.Hour); err == nil {
		t.Error("issued outside the trust domain")
	}
	if err := ca.Save(p.dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Save over an existing root: %v", err)
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"spiffe://example.org/ns/a/sa/b", true},
		{"spiffe://example.org", true},
		{"https://example.org/ns/a", false},
		{"spiffe://Example.org/x", false},
		{"spiffe://example.org:8443/x", false},
		{"spiffe://example.org/x?y=1", false},
		{"spiffe:///x", false},
		{"spiffe://example.org/x/", false},
	} {
		_, err := ParseID(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseID(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
