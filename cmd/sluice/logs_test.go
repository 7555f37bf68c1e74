package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefusalsReadable: what `run` refuses at start (a misspelt
// plugin key, a busy port) is one readable line with no Go stack trace,
// and a refused plugin config reads as validate prints it.
func TestRunRefusalsReadable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		cfg  string
		want []string
	}{
		"plugin key typo": {cfg: `
[admin]
disabled = true
[[listeners]]
name = "p"
address = "127.0.0.1:0"
[[plugins]]
name = "h"
wasm = "builtin:add-header"
config = { request_header = { x = "1" } }
`, want: []string{":10: plugins[0].config.request_header: ", `did you mean "request_headers"?`}},
		"busy port": {cfg: `
[admin]
disabled = true
[[listeners]]
name = "p"
address = "` + busy.Addr().String() + `"
`, want: []string{"cannot start", "address already in use"}},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "sluice.toml")
			os.WriteFile(path, []byte(tc.cfg), 0o644)
			code, _, stderr := runBinary(t, buildSluice(t), "run", "--config", path)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			if strings.Contains(stderr, "stacktrace") || strings.Contains(stderr, ".go:") && strings.Contains(stderr, "\\n\\t") {
				t.Errorf("a stack trace for an expected error:\n%s", stderr)
			}
			for _, want := range tc.want {
				if strings.HasPrefix(want, ":") {
					want = path + want
				}
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}
