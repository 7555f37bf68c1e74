package main

import (
	"bytes"
	"context"
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
)

func TestValidateReportsFileLineKeyAndSuggestion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte(`
[[routes]]
name = "r"
timout = "5s"
backends = [ { cluster = "nope" } ]
`), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"validate", "--config", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut.String())
	}
	msg := errOut.String()
	for _, want := range []string{path + ":4: routes[0].timout", `did you mean "timeout"`, `"nope"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("validate output lacks %q:\n%s", want, msg)
		}
	}

	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte(`
[[routes]]
name = "r"
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9000"]
`), 0o644)
	out.Reset()
	if code := run([]string{"validate", "--config", good}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "ok") {
		t.Fatalf("good file: exit %d, %q", code, out.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "sluice ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut.String())
	}
	if code := run([]string{"run", "--config", "x.toml", "--mode", "mesh"}, &out, &errOut); code != 2 {
		t.Fatalf("bad --mode: exit %d", code)
	}
}

// TestBinarySignals builds sluice, runs it, reloads it with SIGHUP and
// stops it with SIGTERM, as an operator would.
func TestBinarySignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	up := func(body string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	a, b := up("a"), up("b")
	port := freePort(t)
	cfg := func(target string) string {
		return `
[admin]
disabled = true
[server]
watch_config = false
[[listeners]]
name = "p"
address = "127.0.0.1:` + port + `"
[[routes]]
name = "r"
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints = ["` + target + `"]
`
	}
	path := filepath.Join(dir, "sluice.toml")
	os.WriteFile(path, []byte(cfg(a)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--config", path, "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := "http://127.0.0.1:" + port + "/"
	get := func() string {
		for i := 0; i < 100; i++ {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return string(b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("sluice never answered; log:\n%s", logs.String())
		return ""
	}
	if got := get(); got != "a" {
		t.Fatalf("before reload: %q", got)
	}
	os.WriteFile(path, []byte(cfg(b)), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for get() != "b" {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, logs.String())
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
