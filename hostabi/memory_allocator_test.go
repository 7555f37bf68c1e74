package hostabi

import (
	"context"
	"errors"
	"testing"
)

// The guest's allocator may make only the hostcalls proxy-wasm-cpp-host
// allows there (WasmBase::allocMemory): a guest whose allocator calls one
// import loads when the import is allowed, and is refused with an
// *AllocatorHostcallError naming it otherwise. proxy_on_configure reads
// its configuration, so the host runs the allocator.
func TestAllocatorHostcalls(t *testing.T) {
	const i64 = 0x7e
	for _, c := range []struct {
		module, name string
		params       []byte
		args         []byte
		allowed      bool
	}{
		{"env", "proxy_log", []byte{i32, i32, i32}, cat(i32c(2), i32c(0), i32c(4)), true},
		{"wasi_snapshot_preview1", "fd_write", []byte{i32, i32, i32, i32}, cat(i32c(1), i32c(0), i32c(0), i32c(60)), true},
		{"wasi_snapshot_preview1", "clock_time_get", []byte{i32, i64, i32}, cat(i32c(1), []byte{0x42, 0}, i32c(56)), true},
		{"wasi_snapshot_preview1", "poll_oneoff", []byte{i32, i32, i32, i32}, cat(i32c(0), i32c(0), i32c(0), i32c(60)), true},
		{"env", "proxy_get_header_map_size", []byte{i32, i32}, cat(i32c(0), i32c(60)), false},
		{"env", "proxy_get_current_time_nanoseconds", []byte{i32}, i32c(56), false},
		{"wasi_snapshot_preview1", "random_get", []byte{i32, i32}, cat(i32c(0), i32c(8)), false},
		{"wasi_unstable", "sched_yield", nil, nil, false},
		{"env", "pthread_equal", []byte{i32, i32}, cat(i32c(1), i32c(1)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			imports := []wasmImport{
				{module: c.module, name: c.name, params: c.params, results: []byte{i32}},
				{module: "env", name: "proxy_get_buffer_bytes", params: []byte{i32, i32, i32, i32, i32}, results: []byte{i32}},
			}
			wasm := buildModuleWith(imports, []byte("test"),
				wasmFunc{export: "proxy_abi_version_0_2_1"},
				wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32},
					body: cat(c.args, call(0), []byte{0x1a}, []byte{0x41, 0x80, 0x08})},
				// proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, 16, 48, 52): the host
				// allocates for the configuration.
				wasmFunc{export: "proxy_on_configure", params: []byte{i32, i32}, results: []byte{i32},
					body: cat(i32c(7), i32c(0), i32c(16), i32c(48), i32c(52), call(1), []byte{0x1a}, i32c(1))})
			ctx := context.Background()
			p, err := testEngine.Load(ctx, PluginConfig{Name: "alloc-" + c.name, Wasm: wasm, PluginConfig: []byte("config")})
			if c.allowed {
				if err != nil {
					t.Fatalf("%s from the allocator: %v, want it allowed", c.name, err)
				}
				p.Close(ctx)
				return
			}
			if err == nil {
				p.Close(ctx)
				t.Fatalf("%s from the allocator: loaded, want it refused", c.name)
			}
			var ae *AllocatorHostcallError
			if !errors.As(err, &ae) || ae.Hostcall != c.name {
				t.Fatalf("%s from the allocator: %v, want an *AllocatorHostcallError naming it", c.name, err)
			}
		})
	}
}
