package hostabi

import (
	"context"
	"errors"
	"strings"
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

// forbiddenStartGuest calls a proxy_* hostcall other than proxy_log from a
// start-up function: _initialize (reactor) or main.
func forbiddenStartGuest(in, hostcall string, nparams int) []byte {
	imports := []wasmImport{{module: "env", name: hostcall, params: bytesOfN(i32, nparams), results: []byte{i32}}}
	var body []byte
	for range nparams {
		body = append(body, i32c(0)...)
	}
	body = cat(body, call(0), []byte{0x1a}) // drop
	funcs := []wasmFunc{
		{export: "proxy_abi_version_0_2_1"},
		{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
	}
	switch in {
	case "_initialize":
		funcs = append(funcs, wasmFunc{export: "_initialize", body: body})
	case "main":
		funcs = append(funcs, wasmFunc{export: "_initialize"},
			wasmFunc{export: "main", params: []byte{i32, i32}, results: []byte{i32}, body: cat(body, i32c(0))})
	case "_start":
		funcs = append(funcs, wasmFunc{export: "_start", body: body})
	}
	return buildModuleWith(imports, nil, funcs...)
}

func bytesOfN(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// TestStartUpRestrictedHostcalls: as proxy-wasm-cpp-host, start-up code
// may log but not call other proxy_* hostcalls; doing so refuses the load
// with the hostcall's name, and a plugin already loaded (the old version
// of a hot reload) keeps serving.
func TestStartUpRestrictedHostcalls(t *testing.T) {
	old := load(t, "rawabi", PluginConfig{Name: t.Name() + "-old", PluginConfig: []byte("request_headers: log 2 old\\sserves")})
	tests := []struct {
		in, hostcall string
		params       int
	}{
		{"_initialize", "proxy_http_call", 10},
		{"main", "proxy_set_tick_period_milliseconds", 1},
		{"_start", "proxy_get_shared_data", 5},
		{"_initialize", "proxy_done", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in+" "+tt.hostcall, func(t *testing.T) {
			p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: forbiddenStartGuest(tt.in, tt.hostcall, tt.params)})
			if err == nil {
				p.Close(context.Background())
				t.Fatal("loaded")
			}
			want := tt.hostcall + " is not allowed during VM start-up"
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q, want it to name %q and %s", err, want, tt.in)
			}
			var se *StartupHostcallError
			if !errors.As(err, &se) || se.Hostcall != tt.hostcall {
				t.Errorf("error %v is not a *StartupHostcallError for %s", err, tt.hostcall)
			}
		})
	}
	hs, err := old.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.OnDone()
	if _, err := hs.OnRequestHeaders(true); err != nil {
		t.Fatal(err)
	}
	wantLogs(t, old.Name(), "old serves")
}
