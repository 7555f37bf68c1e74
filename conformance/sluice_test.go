package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-proxy/sluice/runtime/server"
)

// sluice is a real sluice started in this process from a TOML string,
// with its log observed.
type sluice struct {
	*server.Server
	logs *observer.ObservedLogs
}

// startSluice runs sluice on cfg until the test ends. cfg should bind
// every listener and the admin API to 127.0.0.1:0.
func startSluice(t testing.TB, cfg string) *sluice {
	t.Helper()
	s, err := trySluice(t, cfg)
	if err != nil {
		t.Fatalf("starting sluice: %v", err)
	}
	return s
}

// trySluice is startSluice returning the error instead of failing t.
func trySluice(t testing.TB, cfg string) (*sluice, error) {
	path := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	core, logs := observer.New(zapcore.DebugLevel)
	s, err := server.New(server.Options{ConfigPath: path, Log: zap.New(core)})
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return &sluice{Server: s, logs: logs}, nil
}

// pluginLogs returns the lines the named plugin logged, in order.
func (s *sluice) pluginLogs(plugin string) []string {
	var out []string
	for _, e := range s.logs.FilterField(zap.String("plugin", plugin)).All() {
		out = append(out, e.Message)
	}
	return out
}

// metrics returns the admin /metrics page.
func (s *sluice) metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + s.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatalf("admin /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// base is the part of every config: admin on a free port, no file
// watching, a short drain.
const base = `
[admin]
address = "127.0.0.1:0"

[server]
watch_config = false
drain_timeout = "2s"
`

// echoReply is what the test upstream answers by default: what it got.
type echoReply struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Host    string              `json:"host"`
	Header  map[string][]string `json:"header"`
	Trailer map[string][]string `json:"trailer"`
	Body    string              `json:"body"`
	Proto   string              `json:"proto"`
	// BinHex is x-bin in hex: JSON would mangle bytes that are not UTF-8.
	BinHex string `json:"bin_hex,omitempty"`
}

// startUpstream runs the test upstream on 127.0.0.1 (HTTP/1.1):
//
//	/big?n=N       N bytes of a repeating pattern
//	/trailers      a small body then the trailer x-upstream-trailer: done
//	/status/N      status N with a short body
//	/sleep?ms=N    answers 200 after N milliseconds
//	anything else  echoReply as JSON (x-upstream: yes set)
func startUpstream(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(upstreamHandler), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/big":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	case r.URL.Path == "/trailers":
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Upstream-Trailer")
		w.Write([]byte("body before trailers"))
		w.Header().Set("X-Upstream-Trailer", "done")
	case r.URL.Path == "/sleep":
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
		}
		w.Write([]byte("slept"))
	case strings.HasPrefix(r.URL.Path, "/status/"):
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		w.WriteHeader(code)
		w.Write([]byte("status body"))
	default:
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		json.NewEncoder(w).Encode(echoReply{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host,
			Header: r.Header, Trailer: r.Trailer, Body: string(b), Proto: r.Proto, BinHex: fmt.Sprintf("%x", r.Header.Get("X-Bin"))})
	}
}

// pattern is n bytes a corrupted transfer would not reproduce by chance.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + (i*7+i/251)%26)
	}
	return b
}

// pki is a CA and a server certificate it signed, for localhost and
// 127.0.0.1, written as PEM files.
type pki struct {
	CAFile, CertFile, KeyFile string
	Pool                      *x509.CertPool
}

func newPKI(t testing.TB) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice conformance CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	p := pki{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	must(t, os.WriteFile(p.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	must(t, os.WriteFile(p.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(t, os.WriteFile(p.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	p.Pool = x509.NewCertPool()
	p.Pool.AddCert(ca)
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// freePort returns a port on 127.0.0.1 that was free a moment ago, for
// external programs that cannot report the port they bound.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func jsonUnmarshal(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("decoding %q: %w", tail(s, 200), err)
	}
	return nil
}
