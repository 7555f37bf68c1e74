package plugins

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/internal/wasmdata"
)

// The committed builtin.wasm must be what src/ builds to, so that
// `go build ./cmd/sluice` embeds the plugins as their source says. This is
// `make -C plugins check` as a test (the same build, then the same data
// segment merge).
func TestModuleIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the modules")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	for _, m := range []struct {
		file string
		tags string
		want []byte
	}{
		{"builtin.wasm", "", Module()},
		{"builtin-lite.wasm", "lite", bytesOf(liteModule)},
	} {
		out := filepath.Join(t.TempDir(), m.file)
		cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags=-buildid=", "-buildmode=c-shared", "-tags="+m.tags, "-o", out, ".")
		cmd.Dir = "src"
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building src (tags %q): %v\n%s", m.tags, err, msg)
		}
		linked, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		built, _, _, err := wasmdata.Merge(linked, wasmdata.DefaultGap)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(built, m.want) {
			t.Fatalf("%s is stale (or was built by another Go than %s): run `make -C plugins build` and commit it", m.file, runtime.Version())
		}
	}
}
