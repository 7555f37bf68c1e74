package wasmfilter

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

func TestWasmPluginConfig(t *testing.T) {
	tests := []struct {
		name             string
		in               config.Plugin
		config, vmConfig string
		open, trusted    bool
	}{
		{name: "tables become JSON",
			in:     config.Plugin{Name: "a", Wasm: "a.wasm", Config: map[string]any{"issuer": "x", "n": int64(2)}, VMConfig: map[string]any{"k": true}},
			config: `{"issuer":"x","n":2}`, vmConfig: `{"k":true}`},
		{name: "raw wins and open fails open",
			in:     config.Plugin{Name: "b", Wasm: "b.wasm", ConfigRaw: "raw bytes", Config: map[string]any{"x": 1}, Failure: "open"},
			config: "raw bytes", open: true},
		{name: "builtins are trusted",
			in:      config.Plugin{Name: "c", Wasm: "builtin:jwt", Failure: "closed"},
			trusted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.VM = config.VM{Instances: 3, MemoryLimit: 32 << 20, CallTimeout: config.Duration(50 * time.Millisecond)}
			got, err := WasmPluginConfig(tt.in, []byte("module"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got.PluginConfig) != tt.config || string(got.VMConfig) != tt.vmConfig || got.FailOpen != tt.open ||
				got.Trusted != tt.trusted || got.Name != tt.in.Name || string(got.Wasm) != "module" ||
				got.Instances != 3 || got.MemoryLimit != 32<<20 || got.CallTimeout != 50*time.Millisecond {
				t.Errorf("got %+v", got)
			}
		})
	}
}
