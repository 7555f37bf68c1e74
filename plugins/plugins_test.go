package plugins

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/goref"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

const i32, i64 = api.ValueTypeI32, api.ValueTypeI64

// sig is a function type written as "i32,i32->i32".
func sig(params, results []api.ValueType) string {
	s := func(ts []api.ValueType) string {
		var parts []string
		for _, t := range ts {
			parts = append(parts, api.ValueTypeName(t))
		}
		return strings.Join(parts, ",")
	}
	return s(params) + "->" + s(results)
}

// abiImports is proxy-wasm v0.2.1's hostcalls (ABI-NOTES 1.3) as the SDK
// declares them; any import the module has must be one of these.
var abiImports = map[string]string{
	"proxy_log":                          "i32,i32,i32->i32",
	"proxy_get_log_level":                "i32->i32",
	"proxy_set_effective_context":        "i32->i32",
	"proxy_done":                         "->i32",
	"proxy_get_current_time_nanoseconds": "i32->i32",
	"proxy_set_tick_period_milliseconds": "i32->i32",
	"proxy_get_buffer_bytes":             "i32,i32,i32,i32,i32->i32",
	"proxy_set_buffer_bytes":             "i32,i32,i32,i32,i32->i32",
	"proxy_get_buffer_status":            "i32,i32,i32->i32",
	"proxy_get_header_map_size":          "i32,i32->i32",
	"proxy_get_header_map_pairs":         "i32,i32,i32->i32",
	"proxy_set_header_map_pairs":         "i32,i32,i32->i32",
	"proxy_get_header_map_value":         "i32,i32,i32,i32,i32->i32",
	"proxy_add_header_map_value":         "i32,i32,i32,i32,i32->i32",
	"proxy_replace_header_map_value":     "i32,i32,i32,i32,i32->i32",
	"proxy_remove_header_map_value":      "i32,i32,i32->i32",
	"proxy_continue_stream":              "i32->i32",
	"proxy_close_stream":                 "i32->i32",
	"proxy_get_status":                   "i32,i32,i32->i32",
	"proxy_send_local_response":          "i32,i32,i32,i32,i32,i32,i32,i32->i32",
	"proxy_http_call":                    "i32,i32,i32,i32,i32,i32,i32,i32,i32,i32->i32",
	"proxy_set_shared_data":              "i32,i32,i32,i32,i32->i32",
	"proxy_get_shared_data":              "i32,i32,i32,i32,i32->i32",
	"proxy_register_shared_queue":        "i32,i32,i32->i32",
	"proxy_resolve_shared_queue":         "i32,i32,i32,i32,i32->i32",
	"proxy_enqueue_shared_queue":         "i32,i32,i32->i32",
	"proxy_dequeue_shared_queue":         "i32,i32,i32->i32",
	"proxy_define_metric":                "i32,i32,i32,i32->i32",
	"proxy_record_metric":                "i32,i64->i32",
	"proxy_increment_metric":             "i32,i64->i32",
	"proxy_get_metric":                   "i32,i32->i32",
	"proxy_get_property":                 "i32,i32,i32,i32->i32",
	"proxy_set_property":                 "i32,i32,i32,i32->i32",
	"proxy_call_foreign_function":        "i32,i32,i32,i32,i32,i32->i32",
	"proxy_grpc_call":                    "i32,i32,i32,i32,i32,i32,i32,i32,i32,i32,i32,i32->i32",
	"proxy_grpc_stream":                  "i32,i32,i32,i32,i32,i32,i32,i32,i32->i32",
	"proxy_grpc_send":                    "i32,i32,i32,i32->i32",
	"proxy_grpc_cancel":                  "i32->i32",
	"proxy_grpc_close":                   "i32->i32",
}

// abiExports is the callbacks of v0.2.1 (ABI-NOTES 1.2) the SDK exports.
var abiExports = map[string]string{
	"proxy_abi_version_0_2_1":                 "->",
	"proxy_on_memory_allocate":                "i32->i32",
	"proxy_on_vm_start":                       "i32,i32->i32",
	"proxy_on_context_create":                 "i32,i32->",
	"proxy_on_configure":                      "i32,i32->i32",
	"proxy_on_done":                           "i32->i32",
	"proxy_on_log":                            "i32->",
	"proxy_on_delete":                         "i32->",
	"proxy_on_tick":                           "i32->",
	"proxy_on_queue_ready":                    "i32,i32->",
	"proxy_on_http_call_response":             "i32,i32,i32,i32,i32->",
	"proxy_on_request_headers":                "i32,i32,i32->i32",
	"proxy_on_request_body":                   "i32,i32,i32->i32",
	"proxy_on_request_trailers":               "i32,i32->i32",
	"proxy_on_response_headers":               "i32,i32,i32->i32",
	"proxy_on_response_body":                  "i32,i32,i32->i32",
	"proxy_on_response_trailers":              "i32,i32->i32",
	"proxy_on_new_connection":                 "i32->i32",
	"proxy_on_downstream_data":                "i32,i32,i32->i32",
	"proxy_on_upstream_data":                  "i32,i32,i32->i32",
	"proxy_on_downstream_connection_close":    "i32,i32->",
	"proxy_on_upstream_connection_close":      "i32,i32->",
	"proxy_on_grpc_receive_initial_metadata":  "i32,i32,i32->",
	"proxy_on_grpc_receive":                   "i32,i32,i32->",
	"proxy_on_grpc_receive_trailing_metadata": "i32,i32,i32->",
	"proxy_on_grpc_close":                     "i32,i32,i32->",
	"_initialize":                             "->",
}

func TestModuleMatchesABI(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, goref.Module())
	if err != nil {
		t.Fatalf("compiling builtin.wasm: %v", err)
	}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case "wasi_snapshot_preview1":
		case "env":
			want, ok := abiImports[name]
			if !ok {
				t.Errorf("imports env.%s, which is not a proxy-wasm 0.2.1 hostcall", name)
			} else if got := sig(f.ParamTypes(), f.ResultTypes()); got != want {
				t.Errorf("env.%s has type %s, want %s", name, got, want)
			}
		default:
			t.Errorf("imports %s.%s: only env and wasi_snapshot_preview1 are allowed", mod, name)
		}
	}
	exports := cm.ExportedFunctions()
	for name, want := range abiExports {
		f, ok := exports[name]
		if !ok {
			t.Errorf("does not export %s", name)
			continue
		}
		if got := sig(f.ParamTypes(), f.ResultTypes()); got != want {
			t.Errorf("export %s has type %s, want %s", name, got, want)
		}
	}
	for name := range exports {
		if strings.HasPrefix(name, "proxy_abi_version_") && name != "proxy_abi_version_0_2_1" {
			t.Errorf("exports a second ABI marker %s", name)
		}
	}
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		t.Error("does not export memory")
	}
}

// A long-running instance must not grow: 100,000 streams through a filter
// leave linear memory where it was after warm-up.
func TestMemoryFlatOverManyRequests(t *testing.T) {
	if raceEnabled {
		t.Skip("single-goroutine and slow under -race")
	}
	g := newGuest(t)
	root, ok := g.startPlugin("add-header", `{"request_headers":{"x-a":"1"},"response_headers":{"x-b":"2"}}`)
	if !ok {
		t.Fatalf("configure failed: %q", g.h.logs)
	}
	run := func(n int) {
		for i := 0; i < n; i++ {
			s := g.newStream(root)
			s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "x"}}, true)
			s.responseHeaders([][2]string{{":status", "200"}}, true)
			s.end()
		}
	}
	// Warm up past several of the SDK's forced collections (one per 10,000
	// streams): measured, the high-water mark is reached by 40,000.
	run(50_000)
	before := g.m.Memory().Size()
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	run(n)
	// One 64 KiB page of slack: where a collection lands relative to the
	// warm-up decides whether the heap's high-water mark has been reached.
	// Without the SDK's periodic collection this grows by over 1 MiB.
	if after := g.m.Memory().Size(); after > before+65536 {
		t.Errorf("memory grew from %d to %d bytes over %d requests", before, after, n)
	}
	if v, _ := getHeader(g.h.maps[0], "x-a"); v != "1" {
		t.Errorf("request header x-a = %q, want 1", v)
	}
}

func TestAddHeader(t *testing.T) {
	g := newGuest(t)
	root, ok := g.startPlugin("add-header", `{"request_headers":{"X-Request-Source":"external"},"response_headers":{"x-served-by":"sluice"}}`)
	if !ok {
		t.Fatalf("configure failed: %q", g.h.logs)
	}
	s := g.newStream(root)
	if a := s.requestHeaders([][2]string{{":path", "/"}, {"x-request-source", "internal"}}, true); a != 0 {
		t.Errorf("request headers action = %d, want continue", a)
	}
	var got []string
	for _, kv := range g.h.maps[0] {
		if kv[0] == "x-request-source" {
			got = append(got, kv[1])
		}
	}
	if !slices.Equal(got, []string{"internal", "external"}) {
		t.Errorf("x-request-source values = %q, want the old one kept and external added", got)
	}
	s.responseHeaders([][2]string{{":status", "200"}}, true)
	if v, _ := getHeader(g.h.maps[2], "x-served-by"); v != "sluice" {
		t.Errorf("x-served-by = %q, want sluice", v)
	}
	if _, ok := g.startPlugin("add-header", `{"bogus":1}`); ok {
		t.Error("unknown config key accepted")
	}
}
