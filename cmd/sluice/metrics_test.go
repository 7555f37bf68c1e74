package main

import (
	"context"
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

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsPageParsesAfterEveryBuiltin runs sluice with every built-in
// plugin on a route of its own, sends traffic through each, and parses the
// whole admin /metrics page with Prometheus's text parser (classic name
// rules). The built-ins' own metrics come out as their docs name them:
// sluice_fault_aborts_injected_total{plugin="chaos"}, not cut at "_" into
// sluice_fault_aborts_injected{total_plugin="\"chaos\"}"}; each plugin's
// health (loaded, instances, memory, calls, failures) is there too.
func TestMetricsPageParsesAfterEveryBuiltin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSluice(t)
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sluice-Limit", "sms=1") // response-ratelimiting's usage header
		io.WriteString(w, "ok")
	})}
	upPort := freePort(t)
	ln, err := net.Listen("tcp", "127.0.0.1:"+upPort)
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)
	defer up.Close()

	port, admin := freePort(t), freePort(t)
	plugins := []struct{ name, builtin, config, path string }{
		{"hello", "add-header", `{ request_headers = { "x-hello" = "1" } }`, "/add"},
		{"keys", "key-auth", `{ keys = [ { key = "k1", consumer = "c1" } ] }`, "/key"},
		{"tokens", "jwt", `{ credentials = [ { key = "iss1", secret = "s3cret", consumer = "c1" } ] }`, "/jwt"},
		{"limit", "rate-limiting", `{ minute = 1, limit_by = "ip" }`, "/rl"},
		{"sms", "response-ratelimiting", `{ limits = { sms = { minute = 1 } }, limit_by = "ip" }`, "/rrl"},
		{"cors", "cors", `{ origins = ["https://app.example"] }`, "/cors"},
		{"local-only", "ip-restriction", `{ allow = ["127.0.0.1"] }`, "/ip"},
		{"tag", "request-transformer", `{ add = { headers = ["x-tag:1"] } }`, "/reqt"},
		{"brand", "response-transformer", `{ add = { headers = ["x-brand:1"] } }`, "/respt"},
		{"split", "canary", `{ http = [ { route = [ { destination = { host = "up", subset = "v1" }, weight = 50 }, { destination = { host = "up", subset = "v2" }, weight = 50 } ] } ] }`, "/canary"},
		{"chaos", "fault", `{ abort = { httpStatus = 503, percentage = 100 } }`, "/fault"},
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `[admin]
address = "127.0.0.1:%s"
[server]
watch_config = false
[access_log]
disabled = true
[[listeners]]
name = "public"
address = "127.0.0.1:%s"
[[clusters]]
name = "up"
labeled_endpoints = [ { address = "127.0.0.1:%s", labels = { version = "v1" } }, { address = "127.0.0.1:%s", labels = { version = "v2" } } ]
`, admin, port, upPort, upPort)
	for _, p := range plugins {
		fmt.Fprintf(&cfg, "[[plugins]]\nname = %q\nwasm = \"builtin:%s\"\nconfig = %s\nvm = { instances = 1 }\n", p.name, p.builtin, p.config)
		backends := `[ { cluster = "up" } ]`
		if p.builtin == "canary" {
			backends = `[ { cluster = "up", subset = { version = "v1" } }, { cluster = "up", subset = { version = "v2" } } ]`
		}
		fmt.Fprintf(&cfg, "[[routes]]\nname = %q\nmatch = { path_prefix = %q }\nplugins = [%q]\nbackends = %s\n", p.name, p.path, p.name, backends)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.toml")
	os.WriteFile(path, []byte(cfg.String()), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--config", path, "--log-level", "warn")
	if os.Getenv("SLUICE_WASM_CACHE") == "" {
		home, _ := os.UserHomeDir()
		cmd.Env = append(os.Environ(), "SLUICE_WASM_CACHE="+filepath.Join(home, ".cache", "sluice-wasm"))
	}
	logs := tempLog(t)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	client := &http.Client{Timeout: 10 * time.Second}
	send := func(method, path string, hdr ...string) int {
		req, _ := http.NewRequest(method, "http://127.0.0.1:"+port+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(2 * time.Minute)
	for send("GET", "/add") != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("sluice never served /add:\n%s", readLog(logs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Twice each, so the limits refuse and the fault aborts count twice.
	for i := 0; i < 2; i++ {
		for _, p := range plugins {
			send("GET", p.path, "apikey", "k1", "Origin", "https://app.example")
		}
		send("OPTIONS", "/cors", "Origin", "https://app.example", "Access-Control-Request-Method", "GET")
	}

	resp, err := client.Get("http://127.0.0.1:" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(page)))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v\n%s", err, page)
	}
	// value sums the family's series that carry the labels.
	value := func(family string, labels map[string]string) (sum float64, found bool) {
		f := fams[family]
		for _, m := range f.GetMetric() {
			match := true
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == k && l.GetValue() == v
				}
				match = match && found
			}
			if match {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				found = true
			}
		}
		return sum, found
	}
	for _, c := range []struct {
		family string
		labels map[string]string
		min    float64
	}{
		{"sluice_fault_aborts_injected_total", map[string]string{"plugin": "chaos"}, 2},
		{"sluice_fault_delays_injected_total", map[string]string{"plugin": "chaos"}, 0},
		{"sluice_rate_limiting_rejected_total", map[string]string{"plugin": "limit"}, 1},
		{"sluice_rate_limiting_store_errors_total", map[string]string{"plugin": "limit", "policy": "local"}, 0},
		{"sluice_response_ratelimiting_store_errors_total", map[string]string{"plugin": "sms", "policy": "local"}, 0},
		{"sluice_http_requests_total", nil, 1},
		// Plugin health.
		{"sluice_wasm_plugin_loaded", map[string]string{"plugin": "chaos", "wasm": "builtin:fault"}, 1},
		{"sluice_wasm_plugin_loaded", map[string]string{"plugin": "tokens", "wasm": "builtin:jwt"}, 1},
		{"sluice_wasm_plugin_instances", map[string]string{"plugin": "chaos"}, 1},
		{"sluice_wasm_plugin_memory_bytes", map[string]string{"plugin": "chaos"}, 1},
		{"sluice_wasm_plugin_calls_total", map[string]string{"plugin": "chaos"}, 1},
		{"sluice_wasm_plugin_failures_total", map[string]string{"plugin": "chaos"}, 0},
		{"sluice_wasm_plugin_active_streams", map[string]string{"plugin": "chaos"}, 0},
	} {
		v, ok := value(c.family, c.labels)
		if !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", c.family, c.labels, v, ok, c.min)
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.ContainsAny(l.GetValue(), `{}"`) || strings.HasPrefix(l.GetName(), "total") {
					t.Errorf("%s has a mangled label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", page)
	}
}

// tempLog is a file for a process's output: the process writes it while
// the test may read it for a failure message, with no pipe goroutine.
func tempLog(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readLog(f *os.File) string {
	b, _ := os.ReadFile(f.Name())
	return string(b)
}
