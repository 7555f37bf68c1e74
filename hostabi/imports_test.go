package hostabi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestLoadNamesEveryMissingImport: a module importing three functions no
// host module exports, and proxy_log with the wrong signature, is refused
// at load with all four named. wazero alone would stop at the first.
func TestLoadNamesEveryMissingImport(t *testing.T) {
	guest := buildModuleWith([]wasmImport{
		{module: "env", name: "proxy_not_a_hostcall", params: []byte{i32}, results: []byte{i32}},
		{module: "env", name: "proxy_log", params: []byte{i32}, results: []byte{i32}},
		{module: "wasi_snapshot_preview1", name: "sock_teleport", params: []byte{i32, i32}, results: []byte{i32}},
		{module: "emscripten_extras", name: "abort"},
		{module: "env", name: "proxy_get_header_map_value", params: []byte{i32, i32, i32, i32, i32}, results: []byte{i32}},
	}, nil,
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		wasmFunc{export: "proxy_on_context_create", params: []byte{i32, i32}},
	)
	_, err := testEngine.Load(context.Background(), PluginConfig{Name: "imports", Wasm: guest})
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("Load: %v; want an *ImportError", err)
	}
	wantMissing := []string{"env.proxy_not_a_hostcall", "wasi_snapshot_preview1.sock_teleport", "emscripten_extras.abort"}
	if !slices.Equal(ie.Missing, wantMissing) {
		t.Errorf("missing %q, want %q", ie.Missing, wantMissing)
	}
	wantSig := "env.proxy_log: the module imports (i32) -> (i32), the host has (i32 i32 i32) -> (i32)"
	if len(ie.Mismatched) != 1 || ie.Mismatched[0] != wantSig {
		t.Errorf("mismatched %q, want [%q]", ie.Mismatched, wantSig)
	}
	for _, s := range append(wantMissing, "env.proxy_log", `plugin "imports"`) {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the error does not name %s: %v", s, err)
		}
	}
	if strings.Contains(err.Error(), "proxy_get_header_map_value") {
		t.Errorf("the error names an import the host provides: %v", err)
	}
}
