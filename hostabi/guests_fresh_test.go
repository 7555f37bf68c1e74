package hostabi

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi/rusttest"
)

// TestRustGuestsAreFresh: the committed Rust test guests
// (testdata/rust/NAME/NAME.wasm) must be what their lib.rs builds to on
// the Rust SDK as it is, so a change to the SDK cannot leave the host's
// tests running an older guest: the testdata Makefile's own build, into a
// temporary directory. The build is deterministic (Debian's rustc, paths
// remapped).
func TestRustGuestsAreFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the guests")
	}
	rustc := rusttest.RustcForWasm(t)
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", "testdata", "rust-out", "RUST_OUT="+out, "RUSTC="+rustc)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Rust guests: %v\n%s", err, msg)
	}
	built, err := filepath.Glob(filepath.Join(out, "*.wasm"))
	if err != nil || len(built) == 0 {
		t.Fatalf("the build made no guest (%v)", err)
	}
	for _, b := range built {
		name := strings.TrimSuffix(filepath.Base(b), ".wasm")
		want, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("testdata", "rust", name, name+".wasm"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/rust/%s/%s.wasm is stale: run `make -C hostabi/testdata rust/%s/%s.wasm` and commit it", name, name, name, name)
		}
	}
}
