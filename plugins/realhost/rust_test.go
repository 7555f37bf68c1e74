package realhost

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/filtertest"
)

// The Rust SDK's example filter (sdk/rust), built with a distribution's
// rustc for wasm32-unknown-unknown, on sluice's host.
func TestRustSDKExampleOnRealHost(t *testing.T) {
	rustc := "/usr/bin/rustc"
	if _, err := os.Stat(rustc); err != nil {
		if rustc, err = exec.LookPath("rustc"); err != nil {
			t.Skip("no rustc (apt-get install rustc libstd-rust-dev-wasm32 lld-14)")
		}
	}
	sysroot, err := exec.Command(rustc, "--print", "sysroot").Output()
	if err != nil {
		t.Skip("rustc does not run")
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(sysroot)), "lib", "rustlib", "wasm32-unknown-unknown")); err != nil {
		t.Skip("rustc has no wasm32-unknown-unknown std (apt-get install libstd-rust-dev-wasm32)")
	}
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
