package scaffold

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteRefusesBadNamesAndOverwrites(t *testing.T) {
	for _, name := range []string{"", "My-Filter", "1x", "a b", "../x"} {
		if _, err := Write(t.TempDir(), Data{Name: name}); err == nil {
			t.Errorf("Write accepted name %q", name)
		}
	}
	dir := t.TempDir()
	if _, err := Write(dir, Data{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir, Data{Name: "x"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Write: %v, want a refusal to overwrite", err)
	}
}

// The generated project must pass its own test and build a .wasm, as a user
// running `make` would see.
func TestGeneratedProjectBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go wasip1 module (seconds)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	sdk, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	paths, err := Write(dir, Data{Name: "my-filter", Module: "example.com/my-filter", SDKPath: sdk})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Makefile", "config.go", "config_test.go", "go.mod", "main.go", "sluice.toml", ".gitignore"}
	for _, w := range want {
		if _, err := os.Stat(filepath.Join(dir, w)); err != nil {
			t.Errorf("%s not written (wrote %q)", w, paths)
		}
	}
	run := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run([]string{"GOFLAGS=-mod=mod"}, "test", "./...")
	run([]string{"GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-mod=mod"}, "build", "-buildmode=c-shared", "-o", "my-filter.wasm", ".")
	st, err := os.Stat(filepath.Join(dir, "my-filter.wasm"))
	if err != nil || st.Size() < 1<<20 {
		t.Fatalf("my-filter.wasm: %v (size %v)", err, st)
	}
	toml, _ := os.ReadFile(filepath.Join(dir, "sluice.toml"))
	if !strings.Contains(string(toml), `wasm = "my-filter.wasm"`) {
		t.Errorf("sluice.toml does not load the filter:\n%s", toml)
	}
}

// rustc returns a rustc that has the wasm32-unknown-unknown std, or skips
// (outside CI) or fails (CI=true) when there is none.
func rustc(t *testing.T) string {
	t.Helper()
	missing := func(why string) string {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s; CI must have it (apt-get install rustc libstd-rust-dev-wasm32 lld-14)", why)
		}
		t.Skipf("%s (apt-get install rustc libstd-rust-dev-wasm32 lld-14)", why)
		return ""
	}
	bin := "/usr/bin/rustc"
	if _, err := os.Stat(bin); err != nil {
		return missing("no /usr/bin/rustc")
	}
	sysroot, err := exec.Command(bin, "--print", "sysroot").Output()
	if err != nil {
		return missing("rustc does not run")
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(sysroot)), "lib", "rustlib", "wasm32-unknown-unknown")); err != nil {
		return missing("rustc has no wasm32-unknown-unknown std")
	}
	return bin
}

// The Rust project: `make` runs its unit tests natively and builds the
// .wasm with rustc alone.
func TestGeneratedRustProjectBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Rust wasm32 module (seconds)")
	}
	rc := rustc(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	sdk, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(t.TempDir(), Data{Name: "x", Lang: "rust"}); err == nil {
		t.Error("a Rust project without SDKPath was accepted")
	}
	if _, err := Write(t.TempDir(), Data{Name: "x", Lang: "cobol"}); err == nil {
		t.Error("an unknown language was accepted")
	}
	dir := t.TempDir()
	if _, err := Write(dir, Data{Name: "my-filter", Lang: "rust", SDKPath: sdk}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Makefile", "Cargo.toml", "src/lib.rs", "sluice.toml", ".gitignore"} {
		if _, err := os.Stat(filepath.Join(dir, w)); err != nil {
			t.Errorf("%s not written", w)
		}
	}
	cmd := exec.Command("make", "RUSTC="+rc)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "test result: ok. 3 passed") {
		t.Errorf("the generated unit tests did not pass:\n%s", out)
	}
	wasm, err := os.ReadFile(filepath.Join(dir, "my-filter.wasm"))
	if err != nil || len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		t.Fatalf("my-filter.wasm: %v (%d bytes)", err, len(wasm))
	}
	cargo, _ := os.ReadFile(filepath.Join(dir, "Cargo.toml"))
	if !strings.Contains(string(cargo), `path = "`+sdk+`/rust"`) || !strings.Contains(string(cargo), `name = "my_filter"`) {
		t.Errorf("Cargo.toml:\n%s", cargo)
	}
}

// LoadKit takes only a sluice checkout; with one, a Go project's go.mod
// requires and replaces sluice, with the checkout's go line and go.sum,
// and gets the kit's test; without one, neither.
func TestKitInGoMod(t *testing.T) {
	if _, err := LoadKit(t.TempDir()); err == nil {
		t.Error("LoadKit accepted an empty directory")
	}
	if _, err := LoadKit(".."); err == nil {
		t.Error("LoadKit accepted the SDK module")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	kit, err := LoadKit(root)
	if err != nil {
		t.Fatal(err)
	}
	if kit.GoVersion == "" || len(kit.Requires) == 0 || kit.GoSum == "" {
		t.Fatalf("kit = %+v", kit)
	}
	for _, r := range kit.Requires {
		if strings.HasPrefix(r, MainModule+"/sdk ") {
			t.Errorf("the kit's requirements repeat the SDK: %s", r)
		}
	}
	with, without := t.TempDir(), t.TempDir()
	sdk, _ := filepath.Abs("..")
	if _, err := Write(with, Data{Name: "f", SDKPath: sdk, Kit: kit, Sluice: "/opt/sluice/bin/sluice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(without, Data{Name: "f", SDKPath: sdk}); err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile(filepath.Join(with, "go.mod"))
	for _, want := range []string{"go " + kit.GoVersion + "\n", "require " + MainModule + " v0.0.0", "replace " + MainModule + " => " + root, kit.Requires[0] + " // indirect"} {
		if !strings.Contains(string(mod), want) {
			t.Errorf("go.mod with the kit lacks %q:\n%s", want, mod)
		}
	}
	if sum, _ := os.ReadFile(filepath.Join(with, "go.sum")); string(sum) != kit.GoSum {
		t.Error("go.sum is not the checkout's")
	}
	if mk, _ := os.ReadFile(filepath.Join(with, "Makefile")); !strings.Contains(string(mk), "SLUICE ?= /opt/sluice/bin/sluice") {
		t.Errorf("Makefile does not run the given sluice:\n%s", mk)
	}
	for _, f := range []string{"filter_test.go", "go.sum"} {
		if _, err := os.Stat(filepath.Join(without, f)); err == nil {
			t.Errorf("%s written without a kit", f)
		}
	}
	if mod, _ := os.ReadFile(filepath.Join(without, "go.mod")); strings.Contains(string(mod), "require "+MainModule+" ") || !strings.Contains(string(mod), "go 1.24\n") {
		t.Errorf("go.mod without a kit:\n%s", mod)
	}
}
