package hostabi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
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

// TestDeadlineLogCarriesStack: a callback stopped at its deadline is
// logged with the digest of its module and its Wasm stack; a guest with
// no name section has its frames named by their exports. A test stream
// without x-request-id (nor RequestIDer) logs an empty request id.
func TestDeadlineLogCarriesStack(t *testing.T) {
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: loopGuest(),
		CallTimeout: 50 * time.Millisecond, SourceDigest: "sha256:feed"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	s := newTestStream("x-request-id", "rid-42")
	if err := oneRequest(p, s); err == nil {
		t.Fatal("the loop was not stopped")
	}
	lines := testLogs.FilterMessage("wasm instance failed; it is replaced").FilterField(zap.String("plugin", t.Name())).All()
	if len(lines) != 1 {
		t.Fatalf("%d failure lines, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	for key, want := range map[string]string{
		"cause":      "timeout",
		"digest":     "sha256:feed",
		"request_id": "rid-42",
		"callback":   "proxy_on_request_headers",
		// The deadline's check traps in the function the rewrite adds.
		"wasm_stack": "[$3() (exported as sluice.refill) $2(i32,i32,i32) i32 (exported as proxy_on_request_headers)]",
	} {
		if got := fmt.Sprint(f[key]); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// TestImportCheckBuildsNoDefinitions: checking a Go guest's imports reads
// them from its bytes. Asking wazero (CompiledModule.ImportedFunctions)
// built and kept a definition of every function of the module: 0.3 MiB
// of Go heap for a small Go filter, for as long as it is loaded.
func TestImportCheckBuildsNoDefinitions(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{})
	defs := reflect.ValueOf(p.vm.cm.mod).Elem().FieldByName("module").Elem().FieldByName("FunctionDefinitionSection")
	if !defs.IsValid() {
		t.Fatal("wazero's module has no FunctionDefinitionSection field (moved in an upgrade?)")
	}
	if defs.Len() != 0 {
		t.Errorf("wazero built %d function definitions for a loaded guest", defs.Len())
	}
	if err := oneRequest(p, newTestStream()); err != nil {
		t.Fatal(err)
	}
}
