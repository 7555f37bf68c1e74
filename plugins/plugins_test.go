package plugins

import (
	"context"
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
