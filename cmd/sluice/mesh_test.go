package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestMeshAcrossProcesses is the sidecar path as users run it: two sluice
// processes with certificates from `sluice ca`, the client's sidecar A
// (outbound) calling the app's sidecar B (inbound, strict mTLS) for an
// app that serves HTTP and gRPC over h2c. HTTP/1.1, HTTP/2 and gRPC go
// through; B hands the app the caller's SPIFFE ID; B's inbound refuses a
// caller without a certificate.
func TestMeshAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSluice(t)
	dir := t.TempDir()
	const client, server = "spiffe://mesh.test/ns/default/sa/client", "spiffe://mesh.test/ns/default/sa/app"
	run := func(args ...string) {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ca := filepath.Join(dir, "ca")
	run("ca", "init", "--dir", ca, "--trust-domain", "mesh.test")
	run("ca", "issue", "--dir", ca, "--id", client, "--out", filepath.Join(dir, "a"))
	run("ca", "issue", "--dir", ca, "--id", server, "--out", filepath.Join(dir, "b"))

	// The app: gRPC health and a plain handler that says what it saw.
	grpcSrv := grpc.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, health.NewServer())
	app := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			grpcSrv.ServeHTTP(w, r)
			return
		}
		fmt.Fprintf(w, "xfcc=%s", r.Header.Get("X-Forwarded-Client-Cert"))
	}), &http2.Server{})}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(appLn)
	defer app.Close()

	bIn, bOut, aIn, aOut := freePort(t), freePort(t), freePort(t), freePort(t)
	sidecar := func(name, appAddr, in, out, extra string) {
		path := filepath.Join(dir, name+".toml")
		os.WriteFile(path, []byte(fmt.Sprintf(`mode = "sidecar"
[admin]
disabled = true
[server]
watch_config = false
[identity]
cert = %q
key = %q
trust_bundle = %q
[sidecar]
app = %q
inbound = "127.0.0.1:%s"
outbound = "127.0.0.1:%s"
peer_authentication = "strict"
%s`, filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(ca, "ca.crt"), appAddr, in, out, extra)), 0o644)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, bin, "run", "--config", path, "--log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); cancel() })
	}
	sidecar("b", appLn.Addr().String(), bIn, bOut, `app_protocol = "grpc"`)
	sidecar("a", "127.0.0.1:1", aIn, aOut, fmt.Sprintf(`
[[services]]
name = "app"
endpoints = ["127.0.0.1:%s"]
identity = %q
`, bIn, server))

	outbound := "http://127.0.0.1:" + aOut + "/"
	get := func(c *http.Client) (*http.Response, string, error) {
		req, _ := http.NewRequest("GET", outbound, nil)
		req.Host = "app"
		resp, err := c.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, string(body), err
	}
	h1 := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, _, err := get(h1)
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mesh path never answered 200: %v %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	for name, c := range map[string]*http.Client{"HTTP/1.1": h1, "HTTP/2": h2} {
		resp, body, err := get(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.StatusCode != 200 || !strings.Contains(body, "URI="+client) {
			t.Errorf("%s: %d %q, want 200 with the caller's SPIFFE ID in the app's XFCC", name, resp.StatusCode, body)
		}
	}

	conn, err := grpc.NewClient("127.0.0.1:"+aOut, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health through the mesh: %v, %v", hc, err)
	}

	// Strict: B's inbound takes no caller without a certificate from the
	// trust domain.
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := plain.Get("https://127.0.0.1:" + bIn + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("B's inbound answered %d to a caller without a certificate", resp.StatusCode)
	}
}
