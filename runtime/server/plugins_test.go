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

// Go-served built-in plugins load the lite Go module unless one of them
// needs the full one (jwt); adding a jwt plugin moves them all to the full
// module. A built-in ported to Rust (add-header) loads its own module
// whatever the others load, and is not restarted when they move.
func TestBuiltinsLoadTheSmallestModule(t *testing.T) {
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
	lite, full, rust := sum(plugins.ModuleFor([]string{"add-header", "cors"})), sum(plugins.Module()), sum(plugins.RustModule("add-header"))
	if lite == full {
		t.Fatal("the lite module is the full one")
	}
	ts := startServer(t, cfg(""))
	hello := entryOf(ts, "hello")
	if hello.sha256 != rust {
		t.Fatalf("add-header loaded %s, want its Rust module %s", hello.sha256, rust)
	}
	if got := entryOf(ts, "guard").sha256; got != lite {
		t.Fatalf("cors without jwt loaded %s, want the lite module %s", got, lite)
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
	if got := entryOf(ts, "guard").sha256; got != full {
		t.Fatalf("with a jwt plugin cors runs %s, want the full module %s", got, full)
	}
	if entryOf(ts, "hello") != hello {
		t.Fatal("add-header (Rust) was restarted when the Go plugins moved to the full module")
	}
	_, e := getJSON(t, http.DefaultClient, mustReq(t, "GET", ts.url("/"), nil))
	if got := e.Header["X-Hello"]; len(got) != 1 || got[0] != "sluice" {
		t.Fatalf("upstream saw x-hello %v with the full module beside", got)
	}
}
