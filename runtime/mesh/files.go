package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// ReloadCheck is how often, at most, the files behind a Bundle or a
// Certificate are looked at again (on use, not on a timer).
const ReloadCheck = time.Second

type stamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (stamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{st.ModTime(), st.Size()}, nil
}

// Bundle is a trust bundle (PEM CA certificates) read from a file and read
// again when the file changes, so adding or rotating a root is a file copy.
// A changed file that does not parse is logged and the old pool kept.
type Bundle struct {
	path string
	log  *zap.Logger

	mu      sync.Mutex
	pool    *x509.CertPool
	st      stamp
	checked time.Time
}

// NewBundle reads path; it fails when the file holds no certificate.
func NewBundle(path string, log *zap.Logger) (*Bundle, error) {
	if log == nil {
		log = zap.NewNop()
	}
	b := &Bundle{path: path, log: log}
	if err := b.load(); err != nil {
		return nil, err
	}
	b.checked = time.Now()
	return b, nil
}

func (b *Bundle) load() error {
	st, err := stampOf(b.path)
	if err != nil {
		return fmt.Errorf("trust bundle: %w", err)
	}
	data, err := config.ReadFile("trust bundle", b.path, config.MaxNamedFileBytes)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return fmt.Errorf("trust bundle %s: no PEM certificate found", b.path)
	}
	b.pool, b.st = pool, st
	return nil
}

// Path is the bundle's file.
func (b *Bundle) Path() string { return b.path }

// Pool is the current set of roots, re-read first when the file changed.
func (b *Bundle) Pool() *x509.CertPool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now := time.Now(); now.Sub(b.checked) >= ReloadCheck {
		b.checked = now
		if st, err := stampOf(b.path); err == nil && st != b.st {
			if err := b.load(); err != nil {
				b.log.Warn("trust bundle changed but could not be loaded; keeping the previous one", zap.String("path", b.path), zap.Error(err))
			} else {
				b.log.Info("trust bundle reloaded", zap.String("path", b.path))
			}
		}
	}
	return b.pool
}

// Certificate is a certificate and key pair read from files and read
// again when either changes. A new pair that does not load (say the
// certificate was copied before the key) is logged and the old one served
// until the next check finds a good pair.
type Certificate struct {
	certFile, keyFile string
	log               *zap.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	id      ID
	idStr   string // id.String(), "" for none: asked for per request
	st      [2]stamp
	checked time.Time
}

// NewCertificate loads the pair.
func NewCertificate(certFile, keyFile string, log *zap.Logger) (*Certificate, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Certificate{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.checked = time.Now()
	return c, nil
}

func (c *Certificate) load() error {
	var st [2]stamp
	for i, p := range []string{c.certFile, c.keyFile} {
		s, err := stampOf(p)
		if err != nil {
			return fmt.Errorf("certificate: %w", err)
		}
		st[i] = s
	}
	certPEM, err := config.ReadFile("certificate", c.certFile, config.MaxNamedFileBytes)
	if err != nil {
		return err
	}
	keyPEM, err := config.ReadFile("key", c.keyFile, config.MaxNamedFileBytes)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("loading certificate %s / key %s: %w", c.certFile, c.keyFile, err)
	}
	var id ID
	if pair.Leaf != nil {
		id, _ = IDFromCert(pair.Leaf)
	}
	c.cert, c.id, c.st = &pair, id, st
	c.idStr = ""
	if !id.IsZero() {
		c.idStr = id.String()
	}
	return nil
}

func (c *Certificate) current() (*tls.Certificate, ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshLocked()
	return c.cert, c.id
}

// refreshLocked reloads the pair when its files changed, looking at most
// once per ReloadCheck.
func (c *Certificate) refreshLocked() {
	if now := time.Now(); now.Sub(c.checked) >= ReloadCheck {
		c.checked = now
		s0, err0 := stampOf(c.certFile)
		s1, err1 := stampOf(c.keyFile)
		if err0 == nil && err1 == nil && (s0 != c.st[0] || s1 != c.st[1]) {
			if err := c.load(); err != nil {
				c.log.Warn("certificate changed but could not be loaded; keeping the previous one", zap.String("cert", c.certFile), zap.Error(err))
			} else {
				c.log.Info("certificate reloaded", zap.String("cert", c.certFile), zap.String("id", c.id.String()))
			}
		}
	}
}

// TLS is the pair to present now.
func (c *Certificate) TLS() *tls.Certificate {
	cert, _ := c.current()
	return cert
}

// IDString is the current certificate's SPIFFE ID as a string ("" when
// it has none), made once per certificate rather than per call.
func (c *Certificate) IDString() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshLocked()
	return c.idStr
}

// ID is the SPIFFE ID of the current certificate (zero when it has none).
func (c *Certificate) ID() ID {
	_, id := c.current()
	return id
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.TLS(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (c *Certificate) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.TLS(), nil
}
