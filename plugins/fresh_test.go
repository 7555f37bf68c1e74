package plugins

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi/rusttest"
)

// The committed rust/builtins.wasm must be what rust/lib.rs builds to,
// with the Rust SDK as it is: `make -C plugins rust-check` as a test (the
// Makefile's own build, into a temporary directory). Every built-in must
// have its source, rust/NAME.rs declaring NAME, and every such source
// must be a built-in.
func TestRustModulesAreFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the module")
	}
	sources, err := filepath.Glob("rust/*.rs")
	if err != nil {
		t.Fatal(err)
	}
	var fromSource []string
	for _, s := range sources {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if m := pluginName.FindSubmatch(b); m != nil {
			if name := filepath.Base(strings.TrimSuffix(s, ".rs")); string(m[1]) != name {
				t.Errorf("%s declares NAME %q: name the file after the plugin", s, m[1])
			}
			fromSource = append(fromSource, string(m[1]))
		}
	}
	if !slices.Equal(fromSource, Names()) {
		t.Fatalf("Rust plugin sources %q, built-ins %q: add the plugin to names in plugins.go and to PLUGINS in rust/lib.rs", fromSource, Names())
	}
	rustc := rusttest.RustcForWasm(t)
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "rust-out", "RUST_OUT="+out, "RUSTC="+rustc)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Rust module: %v\n%s", err, msg)
	}
	version, _ := exec.Command(rustc, "--version").Output()
	built, err := os.ReadFile(filepath.Join(out, "builtins.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, bytesOf(builtins)) {
		t.Errorf("rust/builtins.wasm is stale (or was built by another rustc than %s): run `make -C plugins rust` and commit it", bytes.TrimSpace(version))
	}
}

// pluginName finds a plugin's source by the name it declares.
var pluginName = regexp.MustCompile(`(?m)^pub const NAME: &str = "([a-z-]+)";`)
