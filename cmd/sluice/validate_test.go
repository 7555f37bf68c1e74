package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins"
)

// TestValidateChecksModules: validate reads each plugin's module as run
// would before compiling it, so what run refuses for its files, validate
// refuses too, with the config's file, line and key.
func TestValidateChecksModules(t *testing.T) {
	dir := t.TempDir()
	// 190 bytes whose code section claims 2^32-1 function bodies: it once
	// passed validate and, hot-loaded, ended the proxy out of memory.
	bomb := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\xa9\x01\xff\xff\xff\xff\x0f")
	bomb = append(bomb, bytes.Repeat([]byte{0x0b}, 190-len(bomb))...)
	os.WriteFile(filepath.Join(dir, "bomb.wasm"), bomb, 0o644)
	os.WriteFile(filepath.Join(dir, "good.wasm"), plugins.RustModule("add-header"), 0o644)
	for name, tc := range map[string]struct {
		wasm, extra, want string
	}{
		"count bomb":     {wasm: "bomb.wasm", want: ":5: plugins[0].wasm: " + filepath.Join(dir, "bomb.wasm") + ": invalid Wasm module: code section at byte 18: 4294967295 function bodies: more than the limit of 1000000"},
		"/dev/zero":      {wasm: "/dev/zero", want: ":5: plugins[0].wasm: /dev/zero is not a regular file (a character device)"},
		"over the limit": {wasm: "good.wasm", extra: "[wasm]\nmax_module_bytes = \"1KiB\"\n", want: "more than the limit of 1KiB"},
		"good":           {wasm: "good.wasm"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "sluice.toml")
			cfg := "[admin]\ndisabled = true\n[[plugins]]\nname = \"p\"\nwasm = \"" + tc.wasm + "\"\nroot_id = \"add-header\"\n"
			if tc.extra != "" {
				cfg = tc.extra + cfg
			}
			os.WriteFile(path, []byte(cfg), 0o644)
			var out, errOut bytes.Buffer
			code := run([]string{"validate", "--config", path}, &out, &errOut)
			if tc.want == "" {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut.String())
				}
				return
			}
			want := tc.want
			if strings.HasPrefix(want, ":") {
				want = path + want // file:line: key: problem
			}
			if code != 1 || !strings.Contains(errOut.String(), want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errOut.String(), want)
			}
		})
	}
}

// TestValidateLoadsPlugins: validate loads each plugin in a dry run
// (vm_start and configure), so a misspelt built-in name or built-in config
// key is refused with file:line, key and a suggestion, as `run` would
// refuse it, instead of passing.
func TestValidateLoadsPlugins(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "text.wasm"), []byte("not wasm at all\n"), 0o644)
	for name, tc := range map[string]struct {
		plugin string
		want   []string
	}{
		"built-in name typo": {plugin: `wasm = "builtin:add-headers"`,
			want: []string{":6: plugins[0].wasm: ", `no builtin plugin "add-headers"; did you mean "builtin:add-header"?`}},
		"built-in key typo": {plugin: "wasm = \"builtin:add-header\"\nconfig = { request_header = { x = \"1\" } }",
			want: []string{":7: plugins[0].config.request_header: ", `unknown field "request_header"; did you mean "request_headers"?`}},
		"not wasm": {plugin: `wasm = "text.wasm"`,
			want: []string{":6: plugins[0].wasm: ", "not a Wasm binary module"}},
		"good": {plugin: "wasm = \"builtin:add-header\"\nconfig = { request_headers = { x = \"1\" } }"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "sluice.toml")
			os.WriteFile(path, []byte("[admin]\ndisabled = true\n\n[[plugins]]\nname = \"p\"\n"+tc.plugin+"\n"), 0o644)
			var out, errOut bytes.Buffer
			code := run([]string{"validate", "--config", path}, &out, &errOut)
			if tc.want == nil {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut.String())
				}
				return
			}
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out.String(), errOut.String())
			}
			for _, want := range tc.want {
				if strings.HasPrefix(want, ":") {
					want = path + want
				}
				if !strings.Contains(errOut.String(), want) {
					t.Errorf("stderr %q lacks %q", errOut.String(), want)
				}
			}
		})
	}
}

// TestValidateSummaryPlurals: the summary line counts in words a person
// reads ("1 listener", "2 routes"), not "1 listeners".
func TestValidateSummaryPlurals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.toml")
	os.WriteFile(path, []byte(`
[[listeners]]
name = "l"
address = "127.0.0.1:0"

[[routes]]
name = "a"
match = { path_prefix = "/a" }
backends = [ { cluster = "c" } ]

[[routes]]
name = "b"
backends = [ { cluster = "c" } ]

[[clusters]]
name = "c"
endpoints = ["127.0.0.1:1"]
`), 0o644)
	var out, errOut bytes.Buffer
	if code := cmdValidate([]string{"--config", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := "(mode edge, 1 listener, 2 routes, 1 cluster, 0 plugins)"
	if !strings.Contains(out.String(), want) {
		t.Fatalf("summary %q lacks %q", out.String(), want)
	}
}
