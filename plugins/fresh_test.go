package plugins

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The committed rust/NAME.wasm must be what rust/NAME/lib.rs builds to,
// with the Rust SDK as it is: `make -C plugins rust-check` as a test (the
// Makefile's own build, into a temporary directory). Every Rust module
// embedded must have its source, and every source its embedded module.
func TestRustModulesAreFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the modules")
	}
	sources, err := filepath.Glob("rust/*/lib.rs")
	if err != nil {
		t.Fatal(err)
	}
	var fromSource []string
	for _, s := range sources {
		fromSource = append(fromSource, filepath.Base(filepath.Dir(s)))
	}
	if !slices.Equal(fromSource, RustNames()) {
		t.Fatalf("Rust sources %q, embedded Rust modules %q: add the module to rustModules in plugins.go", fromSource, RustNames())
	}
	rustc := rustcForWasm(t)
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "rust-out", "RUST_OUT="+out, "RUSTC="+rustc)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the Rust modules: %v\n%s", err, msg)
	}
	version, _ := exec.Command(rustc, "--version").Output()
	for _, name := range fromSource {
		built, err := os.ReadFile(filepath.Join(out, name+".wasm"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(built, RustModule(name)) {
			t.Errorf("rust/%s.wasm is stale (or was built by another rustc than %s): run `make -C plugins rust` and commit it", name, bytes.TrimSpace(version))
		}
	}
}

// rustcForWasm is Debian's rustc (a rustup one on PATH has no wasm32
// target), or the test is skipped when none can build for wasm32.
func rustcForWasm(t *testing.T) string {
	rustc := "/usr/bin/rustc"
	if _, err := os.Stat(rustc); err != nil {
		if rustc, err = exec.LookPath("rustc"); err != nil {
			t.Skip("no rustc (make -C plugins rust-tools installs it)")
		}
	}
	sysroot, err := exec.Command(rustc, "--print", "sysroot").Output()
	if err != nil {
		t.Skip("rustc does not run")
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(sysroot)), "lib", "rustlib", "wasm32-unknown-unknown")); err != nil {
		t.Skip("rustc has no wasm32-unknown-unknown std (make -C plugins rust-tools installs it)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	return rustc
}
