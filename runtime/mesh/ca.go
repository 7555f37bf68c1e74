package mesh

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CA is a trust root for one trust domain: a self-signed ECDSA P-256
// certificate and its key, as `sluice ca init` writes them (DIR/ca.crt,
// DIR/ca.key). Its certificate is the trust bundle workloads verify peers
// against.
type CA struct {
	Cert        *x509.Certificate
	Key         crypto.Signer
	TrustDomain string
}

// Files of a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// DefaultCATTL is how long `sluice ca init` makes the root valid.
const DefaultCATTL = 10 * 365 * 24 * time.Hour

// NewCA makes a root for trustDomain valid from now for ttl.
func NewCA(trustDomain string, ttl time.Duration) (*CA, error) {
	td, err := ParseID("spiffe://" + trustDomain)
	if err != nil || td.Path != "" {
		return nil, fmt.Errorf("trust domain %q: want a DNS-like name such as example.org", trustDomain)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"sluice"}, CommonName: "sluice root " + trustDomain},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: trustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, TrustDomain: trustDomain}, nil
}

// LoadCA reads DIR/ca.crt and DIR/ca.key.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w (run `sluice ca init --dir %s` first)", err, dir)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("reading CA key: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CACertFile), err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	ca := &CA{Cert: cert, Key: key}
	if id, err := IDFromCert(cert); err == nil {
		ca.TrustDomain = id.TrustDomain
	}
	return ca, nil
}

// Save writes DIR/ca.crt (0644) and DIR/ca.key (0600). It refuses to
// overwrite an existing root: every workload certificate chains to it.
func (ca *CA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return fmt.Errorf("%s already exists; a new root would orphan every certificate it issued", filepath.Join(dir, CAKeyFile))
	}
	keyPEM, err := keyToPEM(ca.Key)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, CACertFile), certToPEM(ca.Cert.Raw), 0o644)
}

// Issue makes a workload certificate for id, usable as both server and
// client certificate (the same SVID serves a sidecar's inbound and
// outbound sides), valid from notBefore (zero: now less a minute of clock
// skew) for ttl. It returns PEM certificate and key.
func (ca *CA) Issue(id ID, notBefore time.Time, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	if id.IsZero() {
		return nil, nil, errors.New("no SPIFFE ID to issue for")
	}
	if ca.TrustDomain != "" && id.TrustDomain != ca.TrustDomain {
		return nil, nil, fmt.Errorf("%s is outside the CA's trust domain %q", id, ca.TrustDomain)
	}
	if ttl <= 0 {
		return nil, nil, errors.New("ttl must be positive")
	}
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Minute)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"sluice"}},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{{Scheme: "spiffe", Host: id.TrustDomain, Path: id.Path}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return certToPEM(der), keyPEM, nil
}

// IssueFiles writes PREFIX.crt and PREFIX.key, each replaced atomically,
// the key first: a reloader that sees the new certificate beside the old
// key refuses the pair and tries again, never serves a mismatch.
func (ca *CA) IssueFiles(id ID, prefix string, ttl time.Duration) error {
	certPEM, keyPEM, err := ca.Issue(id, time.Time{}, ttl)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(prefix); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := WriteFileAtomic(prefix+".key", keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(prefix+".crt", certPEM, 0o644)
}

// WriteFileAtomic replaces path with data through a rename in the same
// directory, so a watcher never reads half a file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

func certToPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyToPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM key block")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("key cannot sign")
	}
	return s, nil
}
