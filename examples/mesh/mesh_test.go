// Package mesh holds the tests of the two-sidecar example (make run-mesh).
package mesh

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
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var configs = []string{"orders-sidecar.toml", "web-sidecar.toml"}

// TestMeshExample is the guide's path as a user takes it: the example's
// configs validate as committed (with certificates from `sluice ca`), and
// `make run-mesh` starts both sidecars and the app, so a request to web's
// outbound listener reaches orders with web's SPIFFE ID, orders' policy
// refuses a write, its inbound refuses a caller without a certificate, and
// an interrupt stops every process it started. The run uses a copy of the
// configs with free ports, so it can run beside anything else.
func TestMeshExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice and runs make")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sluice")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// The committed configs, certificates made as docs/mesh.md says.
	certs := filepath.Join(dir, "certs")
	run("ca", "init", "--dir", certs, "--trust-domain", "example.local")
	for _, w := range []string{"web", "orders"} {
		run("ca", "issue", "--dir", certs, "--id", "spiffe://example.local/ns/default/sa/"+w, "--out", filepath.Join(certs, w))
	}
	text := map[string]string{}
	for _, name := range configs {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		text[name] = string(b)
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
		if out := run("validate", "--config", filepath.Join(dir, name)); !strings.Contains(out, "ok") {
			t.Errorf("validate %s: %s", name, out)
		}
	}

	// The same configs on free ports (one new port per port they name, the
	// same in both files).
	ports := map[string]string{}
	addr := regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	for _, name := range configs {
		moved := addr.ReplaceAllStringFunc(text[name], func(a string) string {
			p := strings.TrimPrefix(a, "127.0.0.1:")
			if ports[p] == "" {
				ports[p] = freePort(t)
			}
			return "127.0.0.1:" + ports[p]
		})
		os.WriteFile(filepath.Join(dir, name), []byte(moved), 0o644)
	}
	value := func(name, key string) string {
		m := regexp.MustCompile(`(?m)^` + key + ` *= *"127\.0\.0\.1:(\d+)"`).FindStringSubmatch(text[name])
		if m == nil {
			t.Fatalf("%s has no %s", name, key)
		}
		return "127.0.0.1:" + ports[m[1]]
	}
	outbound, inbound, app := value("web-sidecar.toml", "outbound"), value("orders-sidecar.toml", "inbound"), value("orders-sidecar.toml", "app")

	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "run-mesh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "MESH_DIR="+dir)
	// Its own process group, so the test can interrupt make and all it
	// started as Ctrl-C would, and kill them by that ID if they linger.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// make and what it starts write to a file, which the test reads for
	// run.sh's hints and for failure messages.
	logs, err := os.Create(filepath.Join(dir, "run-mesh.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd.Stdout, cmd.Stderr = logs, logs
	logText := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		select {
		case <-done:
		default:
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
	}()

	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method string) (int, string, error) {
		req, _ := http.NewRequest(method, "http://"+outbound+"/items", nil)
		req.Host = "orders"
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		code, body, err := do("GET")
		if err == nil && code == 200 {
			if !strings.Contains(body, "URI=spiffe://example.local/ns/default/sa/web") || !strings.Contains(body, `"upstream": "orders"`) {
				t.Errorf("GET through the mesh: %s; want the orders app's echo with web's SPIFFE ID in x-forwarded-client-cert", body)
			}
			break
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("make run-mesh exited (%v) before the mesh answered:\n%s", err, logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mesh never answered 200 (%d, %v):\n%s", code, err, logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body, err := do("POST"); err != nil || code != 403 {
		t.Errorf("POST: %d %q %v; want 403 from orders' authorization policy", code, body, err)
	}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := plain.Get("https://" + inbound + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("orders' inbound answered %d to a caller without a certificate", resp.StatusCode)
	}
	// The script says what to try once its own probe gets through, which
	// can be a probe interval after ours did.
	hint := "curl -s -H 'Host: orders' http://" + outbound + "/items"
	for wait := time.Now().Add(10 * time.Second); !strings.Contains(logText(), hint); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(wait) {
			t.Errorf("run-mesh did not say what to try:\n%s", logText())
			break
		}
	}

	// Ctrl-C: everything stops, the ports are free again.
	syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-done:
		done <- nil
	case <-time.After(60 * time.Second):
		t.Fatalf("make run-mesh still running 60s after SIGINT:\n%s", logText())
	}
	for _, a := range []string{outbound, inbound, app} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after run-mesh stopped", a)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
