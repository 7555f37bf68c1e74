package goref

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/internal/wasmdata"
)

// The committed builtin.wasm must be what src/ builds to, so that the
// side-by-side tests compare the Rust ports with the Go plugins as their
// source says. This is `make -C plugins check-goref` as a test (the same
// build, then the same data segment merge).
func TestModuleIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the module")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out := filepath.Join(t.TempDir(), "builtin.wasm")
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags=-buildid=", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = "src"
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building src: %v\n%s", err, msg)
	}
	linked, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	built, _, _, err := wasmdata.Merge(linked, wasmdata.DefaultGap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, Module()) {
		t.Fatalf("builtin.wasm is stale (or was built by another Go than %s): run `make -C plugins build-goref` and commit it", runtime.Version())
	}
}
