package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// TestLocalModuleDigestPinned: a local module whose sha256 is pinned and
// does not match is refused the same way by `run` (start-up) and by
// validate's dry run, naming both digests; a matching pin loads.
func TestLocalModuleDigestPinned(t *testing.T) {
	module, err := filepath.Abs("../../examples/filters/header-rust/header-rust.wasm")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(module)
	if err != nil {
		t.Fatal(err)
	}
	right := sha256Hex(b)
	wrong := strings.Repeat("0", 64)
	for _, tc := range []struct {
		sha     string
		wantErr bool
	}{{wrong, true}, {right, false}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "sluice.toml")
		os.WriteFile(path, []byte(baseConfig(`
[[plugins]]
name = "pinned"
wasm = "`+module+`"
sha256 = "`+tc.sha+`"
`)), 0o644)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		checkErr := CheckPlugins(context.Background(), cfg)
		s, runErr := New(Options{ConfigPath: path})
		if s != nil {
			s.Shutdown(context.Background())
		}
		for what, err := range map[string]error{"validate": checkErr, "run": runErr} {
			if !tc.wantErr {
				if err != nil {
					t.Errorf("%s refused the right digest: %v", what, err)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), "the module's sha256 is "+right+", not "+wrong) {
				t.Errorf("%s with a wrong pin: %v; want both digests named", what, err)
			}
		}
	}
}
