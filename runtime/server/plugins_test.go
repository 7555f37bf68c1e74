package server

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins"
)

func TestBuiltinPluginOnRoute(t *testing.T) {
	up := startEcho(t, "up", nil)
	ts := startServer(t, baseConfig(`
[[plugins]]
name = "hello"
wasm = "builtin:add-header"
config = { request_headers = { "x-hello" = "sluice" }, response_headers = { "x-served-by" = "sluice" } }

[[routes]]
name = "r"
plugins = ["hello"]
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	resp, e := getJSON(t, http.DefaultClient, mustReq(t, "GET", ts.url("/"), nil))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := e.Header["X-Hello"]; len(got) != 1 || got[0] != "sluice" {
		t.Fatalf("upstream saw x-hello %v", got)
	}
	if resp.Header.Get("X-Served-By") != "sluice" {
		t.Fatalf("response lacks x-served-by: %v", resp.Header)
	}
	adminResp, err := http.Get("http://" + ts.AdminAddr() + "/plugins")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(adminResp.Body)
	adminResp.Body.Close()
	if !strings.Contains(string(body), `"name": "hello"`) || !strings.Contains(string(body), `"sha256"`) {
		t.Fatalf("/plugins: %s", body)
	}
}

func TestBadPluginRefusedWithClearError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.wasm")
	os.WriteFile(bad, []byte("not wasm at all"), 0o644)
	cfgPath := filepath.Join(dir, "sluice.toml")
	os.WriteFile(cfgPath, []byte(baseConfig(`
[[plugins]]
name = "broken"
wasm = "`+bad+`"
[[routes]]
name = "r"
plugins = ["broken"]
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:1"]
`)), 0o644)
	_, err := New(Options{ConfigPath: cfgPath})
	if err == nil || !strings.Contains(err.Error(), `plugin "broken"`) {
		t.Fatalf("New with a bad module: %v, want an error naming the plugin", err)
	}
}

func TestUnknownBuiltinRefused(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sluice.toml")
	os.WriteFile(cfgPath, []byte(baseConfig(`
[[plugins]]
name = "x"
wasm = "builtin:no-such-plugin"
`)), 0o644)
	_, err := New(Options{ConfigPath: cfgPath})
	if err == nil || !strings.Contains(err.Error(), "no-such-plugin") {
		t.Fatalf("unknown builtin: %v", err)
	}
}

// A config without plugins pays nothing for Wasm: no engine, so the
// built-in module is never compiled; the first plugin (here by a reload)
// makes it.
func TestNoPluginsNoWasmEngine(t *testing.T) {
	up := startEcho(t, "up", nil)
	routes := `
[[routes]]
name = "r"
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["` + up.addr + `"]
`
	ts := startServer(t, baseConfig(routes))
	ts.wasm.mu.Lock()
	engine := ts.wasm.engine
	ts.wasm.mu.Unlock()
	if engine != nil {
		t.Fatal("a config without plugins made a Wasm engine")
	}
	cfg := baseConfig(`
[[plugins]]
name = "hello"
wasm = "builtin:add-header"
config = { request_headers = { "x-hello" = "sluice" } }
` + strings.Replace(routes, `name = "r"`, "name = \"r\"\nplugins = [\"hello\"]", 1))
	if err := os.WriteFile(ts.path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	ts.wasm.mu.Lock()
	engine = ts.wasm.engine
	ts.wasm.mu.Unlock()
	if engine == nil {
		t.Fatal("loading a plugin made no engine")
	}
	_, e := getJSON(t, http.DefaultClient, mustReq(t, "GET", ts.url("/"), nil))
	if got := e.Header["X-Hello"]; len(got) != 1 || got[0] != "sluice" {
		t.Fatalf("upstream saw x-hello %v after the reload", got)
	}
}

// Every built-in plugin is served by the one Rust module of the built-ins
// (the Go module's lite/full choice no longer applies to any): each loads
// it, and adding a plugin (jwt, once the heaviest of the Go ones)
// restarts none of the others. A root_id of the user's own still serves
// the built-in named by wasm (the module chooses its plugin by root_id).
func TestBuiltinsLoadTheirRustModules(t *testing.T) {
	up := startEcho(t, "up", nil)
	cfg := func(extra string) string {
		return baseConfig(`
[[plugins]]
name = "hello"
wasm = "builtin:add-header"
config = { request_headers = { "x-hello" = "sluice" } }

[[plugins]]
name = "guard"
wasm = "builtin:cors"
root_id = "my-cors"
config = { origins = ["https://app.example.com"] }
` + extra + `
[[routes]]
name = "r"
plugins = ["hello", "guard"]
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["` + up.addr + `"]
`)
	}
	entryOf := func(ts *testServer, name string) *pluginEntry {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		e := ts.plugins.byName[name]
		if e == nil {
			t.Fatalf("no plugin %q", name)
		}
		return e
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	ts := startServer(t, cfg(""))
	hello, guard := entryOf(ts, "hello"), entryOf(ts, "guard")
	if want := sum(plugins.RustModule("add-header")); hello.sha256 != want {
		t.Fatalf("add-header loaded %s, want its Rust module %s", hello.sha256, want)
	}
	if want := sum(plugins.RustModule("cors")); guard.sha256 != want {
		t.Fatalf("cors loaded %s, want its Rust module %s", guard.sha256, want)
	}
	if err := os.WriteFile(ts.path, []byte(cfg(`
[[plugins]]
name = "auth"
wasm = "builtin:jwt"
config = { claims_to_verify = ["exp"] }
`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	if want := sum(plugins.RustModule("jwt")); entryOf(ts, "auth").sha256 != want {
		t.Fatalf("jwt loaded %s, want its Rust module %s", entryOf(ts, "auth").sha256, want)
	}
	if entryOf(ts, "hello") != hello || entryOf(ts, "guard") != guard {
		t.Fatal("adding a jwt plugin restarted add-header or cors")
	}
	req := mustReq(t, "GET", ts.url("/"), nil)
	req.Header.Set("Origin", "https://app.example.com")
	resp, e := getJSON(t, http.DefaultClient, req)
	if got := e.Header["X-Hello"]; len(got) != 1 || got[0] != "sluice" {
		t.Fatalf("upstream saw x-hello %v with jwt beside", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
		t.Fatalf("cors (root_id my-cors) answered Access-Control-Allow-Origin %q", got)
	}
}
