package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/sharedstore/redistest"
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
	bin := buildSluice(t)
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

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildSluice builds the binary once per test run.
func buildSluice(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "sluice")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// TestRateLimitAcrossTwoProcesses runs two sluice processes against one
// Redis: Kong's rate-limiting with policy = "redis" gives one limit.
func TestRateLimitAcrossTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSluice(t)
	redisAddr := redistest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	dir := t.TempDir()
	var urls []string
	for i := 0; i < 2; i++ {
		port := freePort(t)
		path := filepath.Join(dir, fmt.Sprintf("sluice%d.toml", i))
		os.WriteFile(path, []byte(`
[admin]
disabled = true
[server]
watch_config = false
[shared_store]
kind = "redis"
redis = { address = "`+redisAddr+`", timeout = "1s" }
[[listeners]]
name = "p"
address = "127.0.0.1:`+port+`"
[[plugins]]
name = "rl"
wasm = "builtin:rate-limiting"
config = { minute = 10, policy = "redis" }
[[routes]]
name = "r"
plugins = ["rl"]
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints = ["`+ln.Addr().String()+`"]
`), 0o644)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "run", "--config", path, "--log-level", "warn")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
		urls = append(urls, "http://127.0.0.1:"+port+"/")
	}
	// Wait for both to serve (a probe would count against the limit, so
	// wait for the port only).
	for _, u := range urls {
		hostport := strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/")
		deadline := time.Now().Add(30 * time.Second)
		for {
			if c, err := net.Dial("tcp", hostport); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never listened", hostport)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	codes := map[int]int{}
	for i := 0; i < 16; i++ {
		resp, err := http.Get(urls[i%2])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[200] != 10 || codes[429] != 6 {
		t.Fatalf("status counts %v across two processes, want 10 x 200 then 6 x 429", codes)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}
