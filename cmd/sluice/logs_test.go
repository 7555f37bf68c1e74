package main

import (
	"context"
	"encoding/json"
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

// TestRunRefusalsReadable: what `run` refuses at start (a misspelt
// plugin key, a busy port) is one readable line with no Go stack trace,
// and a refused plugin config reads as validate prints it.
func TestRunRefusalsReadable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		cfg  string
		want []string
	}{
		"plugin key typo": {cfg: `
[admin]
disabled = true
[[listeners]]
name = "p"
address = "127.0.0.1:0"
[[plugins]]
name = "h"
wasm = "builtin:add-header"
config = { request_header = { x = "1" } }
`, want: []string{":10: plugins[0].config.request_header: ", `did you mean "request_headers"?`}},
		"busy port": {cfg: `
[admin]
disabled = true
[[listeners]]
name = "p"
address = "` + busy.Addr().String() + `"
`, want: []string{"cannot start", "address already in use"}},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "sluice.toml")
			os.WriteFile(path, []byte(tc.cfg), 0o644)
			code, _, stderr := runBinary(t, buildSluice(t), "run", "--config", path)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			if strings.Contains(stderr, "stacktrace") || strings.Contains(stderr, ".go:") && strings.Contains(stderr, "\\n\\t") {
				t.Errorf("a stack trace for an expected error:\n%s", stderr)
			}
			for _, want := range tc.want {
				if strings.HasPrefix(want, ":") {
					want = path + want
				}
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

// TestRunLogsStartupAndBufferedAccess runs sluice as a user would: start-up
// says what it compiles and when it is ready; the access log is buffered
// (flush_interval far away here), its line has Envoy's fields and no
// caller, and SIGTERM writes it out before the process ends.
func TestRunLogsStartupAndBufferedAccess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })}
	go srv.Serve(up)
	defer srv.Close()
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "sluice.toml")
	os.WriteFile(path, []byte(`
[admin]
disabled = true
[server]
watch_config = false
[access_log]
flush_interval = "1h"
[[listeners]]
name = "p"
address = "127.0.0.1:`+port+`"
[[plugins]]
name = "hdr"
wasm = "builtin:add-header"
config = { response_headers = { x-by = "sluice" } }
[[routes]]
name = "r"
plugins = ["hdr"]
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints = ["`+up.Addr().String()+`"]
`), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildSluice(t), "run", "--config", path)
	logs := tempLog(t)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var resp *http.Response
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/hi", nil)
	req.Header.Set("User-Agent", "first-hour/1")
	for i := 0; ; i++ {
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		if i == 200 {
			t.Fatalf("sluice never answered; log:\n%s", readLog(logs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-By") != "sluice" {
		t.Fatalf("the plugin did not run: %v", resp.Header)
	}
	time.Sleep(100 * time.Millisecond)
	if strings.Contains(readLog(logs), `"logger":"access"`) {
		t.Errorf("the access line was written at once, not buffered:\n%s", readLog(logs))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, readLog(logs))
	}
	out := readLog(logs)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"msg":"compiling plugin hdr \(\d+\.\d MB\) \.\.\."`),
		regexp.MustCompile(`"msg":"plugin hdr ready in \S+ \(compile cache (hit|miss)\)"`),
		regexp.MustCompile(`"msg":"ready in \S+"`),
	} {
		if !want.MatchString(out) {
			t.Errorf("start-up log lacks %s:\n%s", want, out)
		}
	}
	var access map[string]any
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"logger":"access"`) {
			if err := json.Unmarshal([]byte(line), &access); err != nil {
				t.Fatalf("access line %q: %v", line, err)
			}
		}
	}
	if access == nil {
		t.Fatalf("no access line after SIGTERM:\n%s", out)
	}
	for k, v := range map[string]any{"method": "GET", "path": "/hi", "response_code": 200.0, "response_flags": "-",
		"user_agent": "first-hour/1", "upstream_host": up.Addr().String(), "upstream_cluster": "c", "route_name": "r", "bytes_sent": 5.0} {
		if access[k] != v {
			t.Errorf("access %s = %v, want %v", k, access[k], v)
		}
	}
	for _, k := range []string{"start_time", "duration", "upstream_service_time", "downstream_remote_address", "connection_id", "bytes_received", "x_forwarded_for", "request_id", "authority"} {
		if _, ok := access[k]; !ok {
			t.Errorf("access line lacks %s: %v", k, access)
		}
	}
	for _, k := range []string{"caller", "level", "stacktrace"} {
		if _, ok := access[k]; ok {
			t.Errorf("access line has %s: %v", k, access)
		}
	}
}
