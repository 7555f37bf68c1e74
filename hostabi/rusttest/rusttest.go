// Package rusttest finds, for tests, the Rust compiler that builds sluice's
// Rust guests: Debian's rustc with the wasm32-unknown-unknown standard
// library (what `make -C plugins rust-tools` installs). A test that needs
// it is skipped, with the reason, on a machine without it.
package rusttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RustcForWasm returns the path of a rustc that can build for
// wasm32-unknown-unknown, and make, or skips t. Debian's /usr/bin/rustc
// comes first: a rustup one earlier on PATH usually lacks the wasm32
// target, and the committed modules are Debian's rustc's output.
func RustcForWasm(t testing.TB) string {
	t.Helper()
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
