package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/mesh"
)

// meshPKI is a trust domain's CA in a temp dir, issuing workload files.
type meshPKI struct {
	t   testing.TB
	dir string
	ca  *mesh.CA
}

func newMeshPKI(t testing.TB, td string) *meshPKI {
	t.Helper()
	ca, err := mesh.NewCA(td, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	return &meshPKI{t: t, dir: dir, ca: ca}
}

func (p *meshPKI) bundle() string { return filepath.Join(p.dir, mesh.CACertFile) }

// issue writes NAME.crt/.key for id; notBefore zero means now.
func (p *meshPKI) issue(name, id string, notBefore time.Time, ttl time.Duration) (cert, key string) {
	p.t.Helper()
	sid, err := mesh.ParseID(id)
	if err != nil {
		p.t.Fatal(err)
	}
	c, k, err := p.ca.Issue(sid, notBefore, ttl)
	if err != nil {
		p.t.Fatal(err)
	}
	cert, key = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	if err := mesh.WriteFileAtomic(key, k, 0o600); err != nil {
		p.t.Fatal(err)
	}
	if err := mesh.WriteFileAtomic(cert, c, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return cert, key
}

// clientTLS is an mTLS client config presenting cert/key and trusting the
// PKI's root (host names are not checked: mesh certs name workloads).
func (p *meshPKI) clientTLS(cert, key string) *tls.Config {
	p.t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	return &tls.Config{
		Certificates:       []tls.Certificate{pair},
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool})
			return err
		},
	}
}

const (
	idOrders   = "spiffe://example.org/ns/default/sa/orders"
	idPayments = "spiffe://example.org/ns/default/sa/payments"
)

// sidecarConfig is a sidecar with its identity files, an app and extra TOML.
func sidecarConfig(cert, key, bundle, app, peerAuth, extra string) string {
	return fmt.Sprintf(`
mode = "sidecar"
[admin]
address = "127.0.0.1:0"
[server]
watch_config = false
drain_timeout = "5s"
[identity]
cert = %q
key = %q
trust_bundle = %q
[sidecar]
app = %q
inbound = "127.0.0.1:0"
outbound = "127.0.0.2:0" # port 0 twice on one IP is refused by validate
peer_authentication = %q
%s`, cert, key, bundle, app, peerAuth, extra)
}

// twoSidecars is client -> A (orders, outbound) -> mTLS -> B (payments,
// inbound) -> app.
type twoSidecars struct {
	pki  *meshPKI
	app  *echoUpstream
	a, b *testServer
	// files of B's identity, for rotation
	bCert, bKey string
	aCert, aKey string
}

func startTwoSidecars(t testing.TB, bExtra, aExtra string) *twoSidecars {
	t.Helper()
	return startTwoSidecarsApp(t, nil, bExtra, aExtra)
}

// startTwoSidecarsApp is startTwoSidecars with the app's handler (nil: the
// echo).
func startTwoSidecarsApp(t testing.TB, app http.HandlerFunc, bExtra, aExtra string) *twoSidecars {
	t.Helper()
	m := &twoSidecars{pki: newMeshPKI(t, "example.org")}
	m.app = startEcho(t, "app", app)
	m.startSidecars(t, m.app.addr, bExtra, aExtra)
	return m
}

// startSidecars starts B (payments) in front of the app at appAddr, and A
// (orders) with B as its service "payments"; aExtra follows that
// [[services]] entry, so its first keys are the service's.
func (m *twoSidecars) startSidecars(t testing.TB, appAddr, bExtra, aExtra string) {
	t.Helper()
	m.bCert, m.bKey = m.pki.issue("payments", idPayments, time.Time{}, time.Hour)
	m.aCert, m.aKey = m.pki.issue("orders", idOrders, time.Time{}, time.Hour)
	m.b = startServer(t, sidecarConfig(m.bCert, m.bKey, m.pki.bundle(), appAddr, "strict", bExtra))
	m.a = startServer(t, sidecarConfig(m.aCert, m.aKey, m.pki.bundle(), "127.0.0.1:1", "strict", fmt.Sprintf(`
[[services]]
name = "payments"
endpoints = [%q]
identity = %q
`, m.b.ListenerAddr("inbound"), idPayments)+aExtra))
}

func (m *twoSidecars) outboundURL(path string) string {
	return "http://" + m.a.ListenerAddr("outbound") + path
}

func get(t testing.TB, c *http.Client, url string, hdr map[string]string) (*http.Response, echoReply) {
	t.Helper()
	req := mustReq(t, "GET", url, nil)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, e := getJSON(t, c, req)
	return resp, e
}

func getBody(t testing.TB, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func h2cClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func TestMeshTwoSidecarsHTTP1AndH2(t *testing.T) {
	m := startTwoSidecars(t, "", "")
	for name, c := range map[string]*http.Client{
		"http1": {Timeout: 10 * time.Second},
		"h2c":   h2cClient(),
	} {
		t.Run(name, func(t *testing.T) {
			const inTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			resp, e := get(t, c, m.outboundURL("/pay/1?x=y"), map[string]string{
				"Host": "payments", "X-Forwarded-Client-Cert": "By=spiffe://evil/forged", "Traceparent": inTrace,
			})
			if resp.StatusCode != 200 || e.Name != "app" || e.Path != "/pay/1?x=y" {
				t.Fatalf("status %d, reply %+v", resp.StatusCode, e)
			}
			xfcc := strings.Join(e.Header["X-Forwarded-Client-Cert"], ",")
			want := "By=" + idPayments + ";Hash="
			if !strings.HasPrefix(xfcc, want) || !strings.HasSuffix(xfcc, ";URI="+idOrders) || strings.Contains(xfcc, "evil") {
				t.Fatalf("x-forwarded-client-cert %q", xfcc)
			}
			pair, _ := tls.LoadX509KeyPair(m.aCert, m.aKey)
			if !strings.Contains(xfcc, fmt.Sprintf("Hash=%x;", sha256.Sum256(pair.Leaf.Raw))) {
				t.Errorf("hash in %q is not the sha256 of orders' certificate", xfcc)
			}
			tp := strings.Join(e.Header["Traceparent"], ",")
			if mesh.TraceID(tp) != "4bf92f3577b34da6a3ce929d0e0e4736" || strings.Contains(tp, "00f067aa0ba902b7") {
				t.Errorf("traceparent %q: want the trace id kept and a new span id", tp)
			}
		})
	}
	// No traceparent: a new trace starts at the first hop.
	_, e := get(t, &http.Client{Timeout: 10 * time.Second}, m.outboundURL("/"), map[string]string{"Host": "payments"})
	if mesh.TraceID(strings.Join(e.Header["Traceparent"], ",")) == "" {
		t.Errorf("no trace started: %v", e.Header["Traceparent"])
	}
	// Between the sidecars: HTTP/2 over mTLS, the peer's identity logged.
	waitLog(t, m.b, func(f map[string]any) bool {
		return f["listener"] == "inbound" && f["protocol"] == "HTTP/2" && f["source_principal"] == idOrders
	})
	waitLog(t, m.a, func(f map[string]any) bool {
		return f["listener"] == "outbound" && f["destination_principal"] == idPayments
	})
}

// waitLog waits for an access-log line on ts whose fields satisfy ok.
func waitLog(t testing.TB, ts *testServer, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range ts.logs.All() {
			if e.Message != "request" {
				continue
			}
			if f := e.ContextMap(); ok(f) {
				return f
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no matching access-log line; have %d entries", ts.logs.Len())
	return nil
}

// waitMessage waits for a log line containing msg and returns its fields.
func waitMessage(t testing.TB, ts *testServer, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range ts.logs.All() {
			if strings.Contains(e.Message, msg) {
				return e.ContextMap()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line %q", msg)
	return nil
}

func TestMeshPeerVerification(t *testing.T) {
	m := startTwoSidecars(t, "", "")
	inbound := "https://" + m.b.ListenerAddr("inbound") + "/"
	try := func(cfg *tls.Config) error {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(inbound)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	// A good peer straight to B's inbound works.
	if err := try(m.pki.clientTLS(m.pki.issue("direct", idOrders, time.Time{}, time.Hour))); err != nil {
		t.Fatalf("good peer refused: %v", err)
	}
	other := newMeshPKI(t, "other.org")
	foreignCert, foreignKey := other.issue("foreign", "spiffe://other.org/ns/default/sa/orders", time.Time{}, time.Hour)
	// Same root, another trust domain (a root shared by two domains).
	loose := &mesh.CA{Cert: m.pki.ca.Cert, Key: m.pki.ca.Key}
	c, k, err := loose.Issue(mesh.ID{TrustDomain: "evil.org", Path: "/ns/default/sa/orders"}, time.Time{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	evilCert, evilKey := filepath.Join(m.pki.dir, "evil.crt"), filepath.Join(m.pki.dir, "evil.key")
	os.WriteFile(evilCert, c, 0o644)
	os.WriteFile(evilKey, k, 0o600)
	expCert, expKey := m.pki.issue("expired", idOrders, time.Now().Add(-3*time.Hour), time.Hour)

	for _, tc := range []struct {
		name, cert, key, reason string
	}{
		{"other root", foreignCert, foreignKey, mesh.ReasonUntrusted},
		{"wrong trust domain", evilCert, evilKey, mesh.ReasonTrustDomain},
		{"expired", expCert, expKey, mesh.ReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := m.pki.clientTLS(tc.cert, tc.key)
			if err := try(cfg); err == nil {
				t.Fatal("accepted")
			}
			waitMessage(t, m.b, "mTLS client refused")
			found := false
			for _, e := range m.b.logs.FilterMessage("mTLS client refused").All() {
				if e.ContextMap()["reason"] == tc.reason {
					found = true
				}
			}
			if !found {
				t.Fatalf("no refusal logged with reason %s", tc.reason)
			}
		})
	}
	// Strict: no client certificate, no service.
	if err := try(&tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Error("strict inbound served a client without a certificate")
	}
	// Plain text on a strict inbound gets nothing either.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + m.b.ListenerAddr("inbound") + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("strict inbound served plain HTTP")
		}
	}
}

func TestMeshPermissiveAcceptsPlainAndMTLS(t *testing.T) {
	pki := newMeshPKI(t, "example.org")
	app := startEcho(t, "app", nil)
	cert, key := pki.issue("payments", idPayments, time.Time{}, time.Hour)
	b := startServer(t, sidecarConfig(cert, key, pki.bundle(), app.addr, "permissive", ""))
	addr := b.ListenerAddr("inbound")

	resp, e := get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/plain", map[string]string{"X-Forwarded-Client-Cert": "URI=spiffe://example.org/forged"})
	if resp.StatusCode != 200 || e.Path != "/plain" || len(e.Header["X-Forwarded-Client-Cert"]) != 0 {
		t.Fatalf("plain: %d %+v", resp.StatusCode, e)
	}
	mc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.clientTLS(pki.issue("orders", idOrders, time.Time{}, time.Hour)), ForceAttemptHTTP2: true}}
	resp, e = get(t, mc, "https://"+addr+"/mtls", nil)
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.HasSuffix(strings.Join(e.Header["X-Forwarded-Client-Cert"], ","), "URI="+idOrders) {
		t.Fatalf("mTLS: %d %s %+v", resp.StatusCode, resp.Proto, e.Header)
	}
	// A client certificate, when sent, is still verified.
	other := newMeshPKI(t, "example.org")
	bad := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: other.clientTLS(other.issue("x", idOrders, time.Time{}, time.Hour))}}
	if resp, err := bad.Get("https://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("permissive accepted a certificate from another root")
	}
}

func TestMeshAuthorization(t *testing.T) {
	wasm := rawabiWasm(t)
	m := startTwoSidecars(t, fmt.Sprintf(`
# CUSTOM policies run plugins first, as Istio's ext-authz providers: one
# that reads the caller's identity, one that denies when its rule matches.
[[plugins]]
name = "ext-peek"
wasm = %q
config_raw = "request_headers: prop_get source/principal | ret 0\n"

[[plugins]]
name = "ext-deny"
wasm = %q
config_raw = "request_headers: local 403 denied-by-ext - - -1 | ret 1\n"

[[authorization]]
action = "CUSTOM"
plugin = "ext-peek"

[[authorization]]
action = "CUSTOM"
plugin = "ext-deny"
when = [ { name = "x-ext-deny", present = true } ]

[[authorization]]
action = "DENY"
when = [ { name = "x-block", present = true } ]

[[authorization]]
action = "ALLOW"
from = { principals = ["spiffe://example.org/ns/default/sa/orders"] }
to = { methods = ["GET", "POST"], paths = ["/pay/*"] }

[[authorization]]
action = "ALLOW"
from = { namespaces = ["ops"] }
to = { paths = ["*/health"] }
`, wasm, wasm), "")
	c := &http.Client{Timeout: 10 * time.Second}
	req := func(method, path string, hdr map[string]string) (int, string) {
		r := mustReq(t, method, m.outboundURL(path), nil)
		r.Host = "payments"
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return getBody(t, c, r)
	}
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		want         int
	}{
		{"GET", "/pay/42", nil, 200},
		{"POST", "/pay/42", nil, 200},
		{"DELETE", "/pay/42", nil, 403},
		{"GET", "/admin", nil, 403},
		{"GET", "/pay/42", map[string]string{"X-Block": "1"}, 403},
		{"GET", "/svc/health", nil, 403}, // orders is not in namespace ops
		{"GET", "/pay/42", map[string]string{"X-Ext-Deny": "1"}, 403},
	} {
		status, body := req(tc.method, tc.path, tc.hdr)
		if status != tc.want {
			t.Errorf("%s %s %v: %d %q, want %d", tc.method, tc.path, tc.hdr, status, body, tc.want)
		}
		if tc.hdr["X-Ext-Deny"] != "" {
			if body != "denied-by-ext" {
				t.Errorf("CUSTOM denial body %q", body)
			}
			continue
		}
		if status == 403 && body != mesh.DeniedBody {
			t.Errorf("denial body %q", body)
		}
	}
	// Another workload of the trust domain, in namespace ops, straight to B.
	opsTLS := m.pki.clientTLS(m.pki.issue("ops", "spiffe://example.org/ns/ops/sa/probe", time.Time{}, time.Hour))
	oc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: opsTLS}}
	inbound := "https://" + m.b.ListenerAddr("inbound")
	if st, _ := getBody(t, oc, mustReq(t, "GET", inbound+"/svc/health", nil)); st != 200 {
		t.Errorf("ops /svc/health: %d", st)
	}
	if st, _ := getBody(t, oc, mustReq(t, "GET", inbound+"/pay/1", nil)); st != 403 {
		t.Errorf("ops /pay/1: %d", st)
	}
	// Filters see the caller as source.principal.
	waitMessage(t, m.b, "prop_get: status=0 "+idOrders)

	// Metrics by identity on both sides, and denials by policy.
	for _, tc := range []struct {
		ts    *testServer
		wants []string
	}{
		{m.b, []string{`sluice_mesh_requests_total{direction="inbound",source_principal="` + idOrders + `",destination_principal="` + idPayments + `",code_class="2xx"}`,
			`sluice_mesh_requests_total{direction="inbound",source_principal="` + idOrders + `",destination_principal="` + idPayments + `",code_class="4xx"}`,
			`sluice_rbac_denied_total{policy="rbac_access_denied_matched_policy[authorization.2]"} 1`}},
		{m.a, []string{`sluice_mesh_requests_total{direction="outbound",source_principal="` + idOrders + `",destination_principal="` + idPayments + `",code_class="2xx"}`}},
	} {
		var buf strings.Builder
		tc.ts.Registry().WritePrometheus(&buf)
		for _, w := range tc.wants {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("metrics lack %s\n%s", w, grepLines(buf.String(), "mesh_|rbac_"))
			}
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range strings.Split(sub, "|") {
			if strings.Contains(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestMeshRotationMidTraffic rotates both sidecars' certificates (a file
// copy, as `sluice ca issue` does) while requests flow; none may fail, and
// new handshakes use the new certificates.
func TestMeshRotationMidTraffic(t *testing.T) {
	m := startTwoSidecars(t, "", "")
	c := &http.Client{Timeout: 10 * time.Second}
	var failures, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := mustReq(t, "GET", m.outboundURL("/pay/x"), nil)
				r.Host = "payments"
				resp, err := c.Do(r)
				total.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	sid, _ := mesh.ParseID(idPayments)
	if err := m.pki.ca.IssueFiles(sid, strings.TrimSuffix(m.bCert, ".crt"), 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	aid, _ := mesh.ParseID(idOrders)
	if err := m.pki.ca.IssueFiles(aid, strings.TrimSuffix(m.aCert, ".crt"), 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	time.Sleep(mesh.ReloadCheck + 500*time.Millisecond)
	// A fresh handshake to B's inbound sees the new certificate.
	newPair, _ := tls.LoadX509KeyPair(m.bCert, m.bKey)
	conn, err := tls.Dial("tcp", m.b.ListenerAddr("inbound"), m.pki.clientTLS(m.aCert, m.aKey))
	if err != nil {
		t.Fatalf("handshake after rotation: %v", err)
	}
	got := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if !got.Equal(newPair.Leaf) {
		t.Error("inbound still serves the old certificate after rotation")
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || total.Load() < 10 {
		t.Fatalf("%d of %d requests failed across rotation", failures.Load(), total.Load())
	}
}

// TestMeshTrustBundleReload: a root added to the bundle file is trusted
// by the running inbound side without a restart.
func TestMeshTrustBundleReload(t *testing.T) {
	m := startTwoSidecars(t, "", "")
	next := newMeshPKI(t, "example.org")
	cfg := next.clientTLS(next.issue("orders", idOrders, time.Time{}, time.Hour))
	cfg.VerifyConnection = nil // B's own certificate is from the first root
	try := func() error {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get("https://" + m.b.ListenerAddr("inbound") + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if try() == nil {
		t.Fatal("a root not in the bundle was trusted")
	}
	old, _ := os.ReadFile(m.pki.bundle())
	add, _ := os.ReadFile(next.bundle())
	if err := mesh.WriteFileAtomic(m.pki.bundle(), append(old, add...), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for try() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the new root was never trusted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMeshOutboundVerifiesPeer: A refuses a peer that is not the service's
// identity, or whose certificate expired.
func TestMeshOutboundVerifiesPeer(t *testing.T) {
	m := startTwoSidecars(t, "", "")
	expCert, expKey := m.pki.issue("expired-b", idPayments, time.Now().Add(-3*time.Hour), time.Hour)
	stale := startServer(t, sidecarConfig(expCert, expKey, m.pki.bundle(), m.app.addr, "strict", ""))
	a := startServer(t, sidecarConfig(m.aCert, m.aKey, m.pki.bundle(), "127.0.0.1:1", "strict", fmt.Sprintf(`
[[services]]
name = "impostor"
endpoints = [%q]
identity = "spiffe://example.org/ns/default/sa/someone-else"

[[services]]
name = "stale"
endpoints = [%q]
identity = %q
`, m.b.ListenerAddr("inbound"), stale.ListenerAddr("inbound"), idPayments)))
	c := &http.Client{Timeout: 10 * time.Second}
	for _, host := range []string{"impostor", "stale"} {
		r := mustReq(t, "GET", "http://"+a.ListenerAddr("outbound")+"/", nil)
		r.Host = host
		if st, body := getBody(t, c, r); st < 500 {
			t.Errorf("%s: %d %q, want a 5xx", host, st, body)
		}
	}
	// Each refusal is logged with its reason (by runtime/upstream).
	for _, want := range []string{"(wrong_identity): expected spiffe://example.org/ns/default/sa/someone-else", "(expired)"} {
		found := false
		for _, e := range a.logs.FilterMessage("upstream TLS handshake failed").All() {
			if err, _ := e.ContextMap()["error"].(string); strings.Contains(err, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no handshake refusal logged with %q", want)
		}
	}
}
