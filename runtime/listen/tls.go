package listen

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

// certReloader serves a certificate pair from files and picks up a new one
// when the files change, so rotation is a file copy and no connection drops.
type certReloader struct {
	certFile, keyFile string
	log               *zap.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	checkedAt time.Time
}

func newCertReloader(certFile, keyFile string, log *zap.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) load() error {
	cs, err := os.Stat(c.certFile)
	if err != nil {
		return fmt.Errorf("tls cert: %w", err)
	}
	ks, err := os.Stat(c.keyFile)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("loading certificate %s / key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.certMod, c.keyMod = &pair, cs.ModTime(), ks.ModTime()
	return nil
}

// get returns the current certificate, re-reading the files at most once a
// second when their modification times moved. A bad new pair is logged and
// the old one kept.
func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if now.Sub(c.checkedAt) >= time.Second {
		c.checkedAt = now
		cs, err1 := os.Stat(c.certFile)
		ks, err2 := os.Stat(c.keyFile)
		if err1 == nil && err2 == nil && (!cs.ModTime().Equal(c.certMod) || !ks.ModTime().Equal(c.keyMod)) {
			old := c.cert
			if err := c.load(); err != nil {
				c.cert = old
				c.log.Warn("new certificate refused; keeping the old one", zap.Error(err))
			} else {
				c.log.Info("certificate reloaded", zap.String("cert", c.certFile))
			}
		}
	}
	return c.cert, nil
}

// serverTLS builds the listener's TLS config; nextProtos are its ALPN ids.
func serverTLS(t *config.TLS, nextProtos []string, log *zap.Logger) (*tls.Config, error) {
	cr, err := newCertReloader(t.Cert, t.Key, log)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cr.get,
		NextProtos:     nextProtos,
	}
	if t.ClientCA != "" {
		pem, err := os.ReadFile(t.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls client_ca %s: no PEM certificates", t.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if t.RequireClientCert != nil && !*t.RequireClientCert {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}
