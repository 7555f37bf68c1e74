package plugins

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The Rust SDK's example filter (sdk/rust) is built with rustc for
// wasm32-unknown-unknown and run on the fake host, where the same checks
// as for Go filters apply: its ABI, its configuration, its header.
func TestRustSDKExample(t *testing.T) {
	rustc := rustcForWasm(t)
	out := t.TempDir()
	cmd := exec.Command("make", "-C", filepath.Join("..", "sdk", "rust"), "OUT="+out, "RUSTC="+rustc)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Rust example: %v\n%s", err, msg)
	}
	wasm, err := os.ReadFile(filepath.Join(out, "add_header.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	rm := compileOther(t, wasm)
	exports := rm.cm.ExportedFunctions()
	for _, name := range []string{"proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "malloc", "_initialize",
		"proxy_on_context_create", "proxy_on_request_headers", "proxy_on_http_call_response"} {
		if _, ok := exports[name]; !ok {
			t.Errorf("Rust module does not export %s", name)
		}
	}
	for _, f := range rm.cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		want, ok := abiImports[name]
		if mod != "env" || !ok {
			t.Errorf("Rust module imports %s.%s", mod, name)
		} else if got := sig(f.ParamTypes(), f.ResultTypes()); got != want {
			t.Errorf("Rust module imports %s as %s, want %s", name, got, want)
		}
	}

	g := instantiate(t, rm)
	root, ok := g.startPlugin("", `{"header":"X-Lang","value":"rust"}`)
	if !ok {
		t.Fatalf("configure failed: %q", g.h.logs)
	}
	for i := 0; i < 3; i++ {
		s := g.newStream(root)
		if a := s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}, {"x-lang", "go"}}, true); a != 0 {
			t.Fatalf("action %d", a)
		}
		if v, _ := getHeader(g.h.maps[0], "x-lang"); v != "rust" {
			t.Errorf("x-lang = %q, want rust (headers %q)", v, g.h.maps[0])
		}
		s.end()
	}
	if id, ok := g.h.metrics["add_header_rust_requests_total"]; !ok || g.h.values[id] != 3 {
		t.Errorf("request counter = %v (defined %v), want 3", g.h.values[id], ok)
	}
	if _, ok := g.startPlugin("", `{"header":":path"}`); ok {
		t.Error("a pseudo-header configuration was accepted")
	}
}
