package hostabi

import (
	"context"
	"testing"
)

// startGuest logs from its start-up functions, through env.proxy_log and
// through WASI fd_write under the old wasi_unstable name. Memory: "init" at
// 0, "main" at 4, "start" at 8, an iovec {16, 6} at 24 pointing at
// "stdou\n" (16), and fd_write's result at 32.
func startGuest(reactor bool) []byte {
	data := []byte("initmainstar")
	data = append(data, 0, 0, 0, 0)
	data = append(data, "stdou\n"...)
	data = append(data, 0, 0)
	data = append(data, 16, 0, 0, 0, 6, 0, 0, 0)
	imports := []wasmImport{
		{module: "env", name: "proxy_log", params: []byte{i32, i32, i32}, results: []byte{i32}},
		{module: "wasi_unstable", name: "fd_write", params: []byte{i32, i32, i32, i32}, results: []byte{i32}},
	}
	logAt := func(off, n byte) []byte { return cat(i32c(2), i32c(off), i32c(n), call(0), []byte{0x1a}) } // drop
	funcs := []wasmFunc{
		{export: "proxy_abi_version_0_2_0"},
		{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
	}
	if reactor {
		funcs = append(funcs,
			wasmFunc{export: "_initialize", body: logAt(0, 4)},
			wasmFunc{export: "main", params: []byte{i32, i32}, results: []byte{i32}, body: cat(logAt(4, 4), i32c(0))})
	} else {
		funcs = append(funcs, wasmFunc{export: "_start", body: cat(logAt(8, 4),
			i32c(1), i32c(24), i32c(1), i32c(32), call(1), []byte{0x1a})})
	}
	return buildModuleWith(imports, data, funcs...)
}

func TestStartUp(t *testing.T) {
	tests := []struct {
		name    string
		reactor bool
		want    []string
	}{
		{"reactor runs _initialize then main", true, []string{"init", "main"}},
		{"command runs _start", false, []string{"star", "stdou"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: startGuest(tt.reactor)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			got := logsOf(t.Name())
			if len(got) != len(tt.want) {
				t.Fatalf("logs %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("logs %q, want %q", got, tt.want)
				}
			}
		})
	}
}
