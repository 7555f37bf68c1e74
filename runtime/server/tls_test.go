package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// selfSigned writes a certificate for 127.0.0.1 and localhost and returns
// the file paths and a pool that trusts it.
func selfSigned(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func tlsConfig(cert, key, upstream string) string {
	return `
[admin]
address = "127.0.0.1:0"
[server]
watch_config = false
[[listeners]]
name = "public"
address = "127.0.0.1:0"
protocols = ["http1", "h2", "h3"]
tls = { cert = "` + cert + `", key = "` + key + `" }
[[routes]]
name = "all"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["` + upstream + `"]
`
}

func TestTLSListenerServesH1H2AndH3(t *testing.T) {
	up := startEcho(t, "up", nil)
	cert, key, pool := selfSigned(t)
	ts := startServer(t, tlsConfig(cert, key, up.addr))
	addr := ts.ListenerAddr("public")
	url := "https://" + addr + "/proto"

	for _, tc := range []struct {
		name   string
		client *http.Client
		major  int
	}{
		{"http1", &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, 1},
		{"h2", &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}, 2},
		{"h3", &http.Client{Transport: &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := mustReq(t, "POST", url, strings.NewReader("body over "+tc.name))
			resp, e := getJSON(t, tc.client, req)
			if resp.StatusCode != 200 || resp.ProtoMajor != tc.major {
				t.Fatalf("status %d over %s, want 200 over HTTP/%d", resp.StatusCode, resp.Proto, tc.major)
			}
			if e.Body != "body over "+tc.name || e.Header["X-Forwarded-Proto"][0] != "https" {
				t.Fatalf("upstream saw body %q, proto %v", e.Body, e.Header["X-Forwarded-Proto"])
			}
			if tc.major < 3 && !strings.HasPrefix(resp.Header.Get("Alt-Svc"), `h3=":`) {
				t.Fatalf("Alt-Svc %q does not advertise h3", resp.Header.Get("Alt-Svc"))
			}
		})
	}
}

func TestCurlOverH2AndH2C(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (make test installs it)")
	}
	up := startEcho(t, "up", nil)
	cert, key, _ := selfSigned(t)
	tlsTS := startServer(t, tlsConfig(cert, key, up.addr))
	plain := startServer(t, baseConfig(`
[[routes]]
name = "all"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"http1.1", []string{"--http1.1", "http://" + plain.ListenerAddr("public") + "/c"}},
		{"h2c prior knowledge", []string{"--http2-prior-knowledge", "http://" + plain.ListenerAddr("public") + "/c"}},
		{"h2c upgrade", []string{"--http2", "http://" + plain.ListenerAddr("public") + "/c"}},
		{"h2 over TLS", []string{"--http2", "--cacert", cert, "https://" + tlsTS.ListenerAddr("public") + "/c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			args := append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"}, tc.args...)
			out, err := exec.CommandContext(ctx, curl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, out)
			}
			want := "200 1.1"
			if tc.name != "http1.1" {
				want = "200 2"
			}
			if string(out) != want {
				t.Fatalf("curl says %q, want %q", out, want)
			}
		})
	}
}

var _ = io.EOF
