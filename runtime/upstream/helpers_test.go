package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"go.uber.org/zap/zaptest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// backend is a local upstream that answers with its own name.
type backend struct {
	name string
	addr string
}

// idHandler answers "name" in the body and the x-backend header.
func idHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-backend", name)
		io.WriteString(w, name)
	})
}

// startHTTP1 serves h on 127.0.0.1:0 over HTTP/1.1 (and h2c when h2c).
func startHTTP(t testing.TB, name string, h http.Handler, withH2C bool) backend {
	t.Helper()
	if h == nil {
		h = idHandler(name)
	}
	if withH2C {
		h = h2c.NewHandler(h, &http2.Server{})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return backend{name: name, addr: srv.Listener.Addr().String()}
}

// testCert is a self-signed certificate for 127.0.0.1 and localhost,
// written to dir/cert.pem so a cluster can trust it as its CA.
func testCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost", "upstream.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

// startH2TLS serves h over TLS with ALPN h2 and http/1.1.
func startH2TLS(t *testing.T, name string, h http.Handler, cert tls.Certificate) backend {
	t.Helper()
	if h == nil {
		h = idHandler(name)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return backend{name: name, addr: srv.Listener.Addr().String()}
}

// startH3 serves h over HTTP/3 on 127.0.0.1:0/udp.
func startH3(t *testing.T, name string, h http.Handler, cert tls.Certificate) backend {
	t.Helper()
	if h == nil {
		h = idHandler(name)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(pc)
	}()
	t.Cleanup(func() {
		srv.Close()
		pc.Close()
		<-done
	})
	return backend{name: name, addr: pc.LocalAddr().String()}
}

func addrs(bs ...backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.addr
	}
	return out
}

// newTestManager builds a manager whose clusters close with the test.
func newTestManager(t *testing.T, opts *options, clusters ...config.Cluster) (*Manager, *stats.Registry) {
	t.Helper()
	if opts == nil {
		opts = defaultOptions()
	}
	reg := stats.NewRegistry()
	m, err := newManager(clusters, reg, zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, reg
}

// get sends one GET through c and returns the body; the response is fully
// read and closed.
func get(t *testing.T, c *Cluster, pick Pick) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, &Request{Headers: headers("GET", "/path", "upstream.test")}, pick)
	if err != nil {
		return "", err
	}
	return readAll(t, resp)
}

func mustGet(t *testing.T, c *Cluster, pick Pick) string {
	t.Helper()
	body, err := get(t, c, pick)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	return body
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func metricText(t *testing.T, reg *stats.Registry) string {
	t.Helper()
	var b strings.Builder
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func failureOf(err error) Failure {
	var ue *Error
	if errors.As(err, &ue) {
		return ue.Failure
	}
	return Classify(err)
}

// closedAddr is a 127.0.0.1 port nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}
