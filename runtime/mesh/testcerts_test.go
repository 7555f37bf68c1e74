package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pki is a CA directory with helpers to issue files for tests.
type pki struct {
	t   testing.TB
	dir string
	ca  *CA
}

func newPKI(t testing.TB, td string) *pki {
	t.Helper()
	ca, err := NewCA(td, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	return &pki{t: t, dir: dir, ca: ca}
}

func (p *pki) bundle() string { return filepath.Join(p.dir, CACertFile) }

// issue writes PREFIX.crt/.key under the PKI dir; notBefore/ttl shape
// validity (an expired certificate: notBefore two hours ago, ttl one).
func (p *pki) issue(name, id string, notBefore time.Time, ttl time.Duration) (cert, key string) {
	p.t.Helper()
	sid, err := ParseID(id)
	if err != nil {
		p.t.Fatal(err)
	}
	c, k, err := p.ca.Issue(sid, notBefore, ttl)
	if err != nil {
		p.t.Fatal(err)
	}
	cert, key = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	if err := os.WriteFile(key, k, 0o600); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(cert, c, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return cert, key
}

func leafOf(t testing.TB, cert, key string) []*x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{pair.Leaf}
}

// chain issues and returns the leaf as a one-certificate chain.
func (p *pki) chain(name, id string, notBefore time.Time, ttl time.Duration) []*x509.Certificate {
	p.t.Helper()
	c, k := p.issue(name, id, notBefore, ttl)
	return leafOf(p.t, c, k)
}
