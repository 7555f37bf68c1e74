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
