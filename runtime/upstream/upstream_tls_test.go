package upstream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/mesh"
)

// testCA is a certificate authority for one trust domain.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial atomic.Int64

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

type leafOpts struct {
	spiffe  string
	ips     []net.IP
	expired bool
}

// issue signs a leaf for both server and client use.
func (ca *testCA) issue(t *testing.T, o leafOpts) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: o.ips,
	}
	if o.expired {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	}
	if o.spiffe != "" {
		u, _ := url.Parse(o.spiffe)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM, keyPEM
}

// writeFiles writes PEM blobs into dir under the given names, atomically.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// startMTLS serves h2 and http/1.1 over TLS with cert, asking for a client
// certificate from clientCA when set; the body names the client's URI SAN.
func startMTLS(t *testing.T, cert tls.Certificate, clientCA *testCA, h http.Handler) string {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) > 0 {
				io.WriteString(w, r.TLS.PeerCertificates[0].URIs[0].String())
				return
			}
			io.WriteString(w, "anonymous")
		})
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
		srv.TLS.ClientCAs = pool
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestUpstreamPeerVerification(t *testing.T) {
	ca := newTestCA(t, "example.org")
	other := newTestCA(t, "evil.org")
	const want = "spiffe://example.org/ns/default/sa/payments"
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	dir := t.TempDir()
	_, clientCertPEM, clientKeyPEM := ca.issue(t, leafOpts{spiffe: "spiffe://example.org/ns/default/sa/orders"})
	writeFiles(t, dir, map[string][]byte{"ca.pem": ca.pem, "client.pem": clientCertPEM, "client.key": clientKeyPEM})
	meshTLS := func(identity string) *config.UpstreamTLS {
		return &config.UpstreamTLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client.key"), Identity: identity}
	}
	tests := []struct {
		name      string
		server    leafOpts
		signer    *testCA
		tls       *config.UpstreamTLS
		generated bool
		wantErr   string // "" for success
	}{
		{"identity matches", leafOpts{spiffe: want}, ca, meshTLS(want), true, ""},
		{"identity differs", leafOpts{spiffe: "spiffe://example.org/ns/default/sa/other"}, ca, meshTLS(want), true, "(wrong_identity): expected " + want},
		{"other trust root", leafOpts{spiffe: want}, other, meshTLS(want), true, "(untrusted_issuer)"},
		{"expired", leafOpts{spiffe: want, expired: true}, ca, meshTLS(want), true, "(expired)"},
		{"mesh, same trust domain", leafOpts{spiffe: "spiffe://example.org/ns/x/sa/y"}, ca, meshTLS(""), true, ""},
		{"mesh, wrong trust domain", leafOpts{spiffe: "spiffe://evil.org/ns/x/sa/y"}, ca, meshTLS(""), true, "(wrong_trust_domain)"},
		{"mesh, no SPIFFE ID", leafOpts{ips: loopback}, ca, meshTLS(""), true, "(no_spiffe_id)"},
		{"edge, IP SAN", leafOpts{ips: loopback}, ca, &config.UpstreamTLS{CA: filepath.Join(dir, "ca.pem")}, false, ""},
		{"edge, no matching SAN", leafOpts{spiffe: want}, ca, &config.UpstreamTLS{CA: filepath.Join(dir, "ca.pem")}, false, "doesn't contain any IP SANs"},
		{"edge, client cert but no mesh", leafOpts{spiffe: want}, ca, meshTLS(""), false, "doesn't contain any IP SANs"},
		{"insecure", leafOpts{}, other, &config.UpstreamTLS{InsecureSkipVerify: true}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverCert, _, _ := tt.signer.issue(t, tt.server)
			addr := startMTLS(t, serverCert, nil, nil)
			for _, protocol := range []string{"h2", "http1"} {
				m, _ := newTestManager(t, nil, config.Cluster{Name: "c", Protocol: protocol, Endpoints: []string{addr}, TLS: tt.tls, Generated: tt.generated})
				_, err := get(t, m.Cluster("c"), Pick{})
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("%s: %v", protocol, err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("%s: err %v, want %q", protocol, err, tt.wantErr)
				case tt.wantErr != "" && Classify(err) != ConnectFailure:
					t.Errorf("%s: classified %v, want connect_failure", protocol, Classify(err))
				}
			}
		})
	}
}

// TestUpstreamTLSRotation swaps the client certificate and the CA bundle
// on disk while a request is in flight: the open request completes, and
// new connections present the new certificate and trust the new CA.
func TestUpstreamTLSRotation(t *testing.T) {
	ca1 := newTestCA(t, "example.org")
	ca2 := newTestCA(t, "example.org")
	dir := t.TempDir()
	_, c1, k1 := ca1.issue(t, leafOpts{spiffe: "spiffe://example.org/ns/a/sa/old"})
	writeFiles(t, dir, map[string][]byte{"ca.pem": ca1.pem, "client.pem": c1, "client.key": k1})
	const peer = "spiffe://example.org/ns/b/sa/server"

	// Servers accept client certificates from either CA, so the rotation
	// of the client side can be seen on its own.
	g := newGate()
	var slow atomic.Bool
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			g.ServeHTTP(w, r)
			return
		}
		io.WriteString(w, r.TLS.PeerCertificates[0].URIs[0].String())
	})
	serverOld, _, _ := ca1.issue(t, leafOpts{spiffe: peer})
	addr := startMTLSMulti(t, serverOld, []*testCA{ca1, ca2}, handler)

	opts := defaultOptions()
	tlsCfg := &config.UpstreamTLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client.key"), Identity: peer}
	m, _ := newTestManager(t, opts, config.Cluster{Name: "c", Protocol: "h2", Endpoints: []string{addr}, TLS: tlsCfg})
	c := m.Cluster("c")
	if got := mustGet(t, c, Pick{}); got != "spiffe://example.org/ns/a/sa/old" {
		t.Fatalf("server saw %q", got)
	}
	slow.Store(true)
	inflight := startTry(c, t.Context())
	<-g.arrived
	slow.Store(false)

	_, c2, k2 := ca2.issue(t, leafOpts{spiffe: "spiffe://example.org/ns/a/sa/new"})
	writeFiles(t, dir, map[string][]byte{"client.pem": c2, "client.key": k2, "ca.pem": append(append([]byte{}, ca1.pem...), ca2.pem...)})
	time.Sleep(mesh.ReloadCheck + 100*time.Millisecond) // files are looked at once a second
	// The pooled connection still works and still carries the old
	// certificate; a new connection carries the new one.
	if got := mustGet(t, c, Pick{}); got != "spiffe://example.org/ns/a/sa/old" {
		t.Errorf("existing connection: server saw %q", got)
	}
	c.pool.(*h2Pool).closeAll()
	if got := mustGet(t, c, Pick{}); got != "spiffe://example.org/ns/a/sa/new" {
		t.Errorf("after rotation: server saw %q", got)
	}
	close(g.release)
	if err := <-inflight; err != nil {
		t.Errorf("request in flight across the rotation failed: %v", err)
	}

	// A server now issued by the new CA is trusted through the new bundle.
	serverNew, _, _ := ca2.issue(t, leafOpts{spiffe: peer})
	addr2 := startMTLSMulti(t, serverNew, []*testCA{ca1, ca2}, handler)
	m2, _ := newTestManager(t, opts, config.Cluster{Name: "c2", Protocol: "h2", Endpoints: []string{addr2}, TLS: tlsCfg})
	if _, err := get(t, m2.Cluster("c2"), Pick{}); err != nil {
		t.Errorf("server from the rotated CA: %v", err)
	}

	// A half-written file keeps the last good material.
	writeFiles(t, dir, map[string][]byte{"client.pem": []byte("-----BEGIN CERT")})
	time.Sleep(mesh.ReloadCheck + 100*time.Millisecond)
	c.pool.(*h2Pool).closeAll()
	if got := mustGet(t, c, Pick{}); got != "spiffe://example.org/ns/a/sa/new" {
		t.Errorf("after a broken write: server saw %q", got)
	}
}

func startMTLSMulti(t *testing.T, cert tls.Certificate, clientCAs []*testCA, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	pool := x509.NewCertPool()
	for _, ca := range clientCAs {
		pool.AddCert(ca.cert)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
