package realhost

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi/rusttest"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
)

// The Rust SDK's example filter (sdk/rust), built with a distribution's
// rustc for wasm32-unknown-unknown, on sluice's host.
func TestRustSDKExampleOnRealHost(t *testing.T) {
	rustc := rusttest.RustcForWasm(t)
	out := t.TempDir()
	if msg, err := exec.Command("make", "-C", filepath.Join("..", "..", "sdk", "rust"), "OUT="+out, "RUSTC="+rustc).CombinedOutput(); err != nil {
		t.Fatalf("building the Rust example: %v\n%s", err, msg)
	}
	wasm, err := os.ReadFile(filepath.Join(out, "add_header.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	f := filtertest.Load(t, wasm, filtertest.Options{Name: "rust", Config: `{"header":"X-Lang","value":"rust"}`, Untrusted: true})
	for i := 0; i < 3; i++ {
		r := f.Do(filtertest.Request{Headers: [][2]string{{"x-lang", "go"}}})
		if v, _ := r.RequestHeader("x-lang"); v != "rust" {
			t.Errorf("x-lang = %q, want rust", v)
		}
	}
	if v, ok := f.Metric("add_header_rust_requests_total"); !ok || v != 3 {
		t.Errorf("request counter = %d, %v", v, ok)
	}
	if _, err := filtertest.LoadErr(t, wasm, filtertest.Options{Config: `{"header":":path"}`}); err == nil {
		t.Error("a pseudo-header configuration was accepted")
	}
}
