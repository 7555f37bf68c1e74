package mesh

import (
	"crypto/x509"
	"errors"
	"os"
	"testing"
	"time"
)

func TestVerifierReasons(t *testing.T) {
	p := newPKI(t, "example.org")
	other := newPKI(t, "other.org")
	b, err := NewBundle(p.bundle(), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Bundle: b, TrustDomain: "example.org"}

	good := p.chain("good", "spiffe://example.org/ns/a/sa/b", time.Time{}, time.Hour)
	expired := p.chain("old", "spiffe://example.org/ns/a/sa/b", time.Now().Add(-2*time.Hour), time.Hour)
	foreign := other.chain("x", "spiffe://other.org/ns/a/sa/b", time.Time{}, time.Hour)
	// Same root, another trust domain: only the domain check catches it.
	loose := &CA{Cert: p.ca.Cert, Key: p.ca.Key}
	c, k, err := loose.Issue(ID{TrustDomain: "evil.org", Path: "/ns/a/sa/b"}, time.Time{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p.dir+"/evil.crt", c, 0o644)
	os.WriteFile(p.dir+"/evil.key", k, 0o600)
	wrongDomain := leafOf(t, p.dir+"/evil.crt", p.dir+"/evil.key")

	for _, tc := range []struct {
		name   string
		chain  []*x509.Certificate
		reason string
	}{
		{"good", good, ""},
		{"none", nil, ReasonNoCertificate},
		{"expired", expired, ReasonExpired},
		{"other root", foreign, ReasonUntrusted},
		{"wrong domain", wrongDomain, ReasonTrustDomain},
	} {
		id, err := v.Verify(tc.chain, x509.ExtKeyUsageClientAuth)
		if tc.reason == "" {
			if err != nil || id.String() != "spiffe://example.org/ns/a/sa/b" {
				t.Errorf("%s: %v, %v", tc.name, id, err)
			}
			continue
		}
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Reason != tc.reason {
			t.Errorf("%s: got %v, want reason %s", tc.name, err, tc.reason)
		}
	}
}

func TestBundleReloads(t *testing.T) {
	p := newPKI(t, "example.org")
	other := newPKI(t, "example.org")
	b, err := NewBundle(p.bundle(), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Bundle: b, TrustDomain: "example.org"}
	chain := other.chain("w", "spiffe://example.org/ns/a/sa/w", time.Time{}, time.Hour)
	if _, err := v.Verify(chain, x509.ExtKeyUsageClientAuth); err == nil {
		t.Fatal("verified against the wrong root")
	}
	// Both roots in the bundle, as during a root rotation.
	a, _ := os.ReadFile(p.bundle())
	o, _ := os.ReadFile(other.bundle())
	if err := WriteFileAtomic(p.bundle(), append(a, o...), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := v.Verify(chain, x509.ExtKeyUsageClientAuth); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bundle never reloaded")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A broken file keeps the last good pool.
	os.WriteFile(p.bundle(), []byte("garbage"), 0o644)
	time.Sleep(ReloadCheck + 100*time.Millisecond)
	if _, err := v.Verify(chain, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("broken bundle replaced the good one: %v", err)
	}
}
