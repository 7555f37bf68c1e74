package plugins

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluice-proxy/sluice/hostabi/rusttest"
)

// The Rust SDK's example filter (sdk/rust) is built with rustc for
// wasm32-unknown-unknown and its ABI checked as the Go module's is: the
// exports a host calls, and only proxy-wasm 0.2.1 hostcalls with their
// types. realhost.TestRustSDKExampleOnRealHost runs it on sluice's host
// (its configuration, its header, its metric).
func TestRustSDKExample(t *testing.T) {
	rustc := rusttest.RustcForWasm(t)
	out := t.TempDir()
	cmd := exec.Command("make", "-C", filepath.Join("..", "sdk", "rust"), "OUT="+out, "RUSTC="+rustc)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Rust example: %v\n%s", err, msg)
	}
	wasm, err := os.ReadFile(filepath.Join(out, "add_header.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	exports := cm.ExportedFunctions()
	for _, name := range []string{"proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "malloc", "_initialize",
		"proxy_on_context_create", "proxy_on_request_headers", "proxy_on_http_call_response"} {
		if _, ok := exports[name]; !ok {
			t.Errorf("Rust module does not export %s", name)
		}
	}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		want, ok := abiImports[name]
		if mod != "env" || !ok {
			t.Errorf("Rust module imports %s.%s", mod, name)
		} else if got := sig(f.ParamTypes(), f.ResultTypes()); got != want {
			t.Errorf("Rust module imports %s as %s, want %s", name, got, want)
		}
	}
}
