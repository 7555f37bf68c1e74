package hostabi

import (
	"context"
	"strings"
	"testing"
)

func TestLoadStartsAndConfigures(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{
		VMConfig:     []byte(`vm_start: log 2 vm\sstarted`),
		PluginConfig: []byte(`configure: log 2 configured | buf_get 7 0 9`),
		RootID:       "root", VMID: "vm",
	})
	wantLogs(t, p.Name(), "vm started", "configured", "configure buf_get: status=0 configure")
	st := p.Stats()
	if st.Instances != 1 || st.ABI != "0.2.1" || len(st.SHA256) != 64 || st.MemoryBytes == 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestLoadRefused(t *testing.T) {
	tests := []struct {
		name, guest, vmConfig, config string
		wasm                          []byte
		want                          string
	}{
		{name: "no abi export", wasm: buildModule(), want: "missing or unknown proxy-wasm ABI version"},
		{name: "no memory", wasm: []byte("\x00asm\x01\x00\x00\x00"), want: "invalid Wasm module: missing or unknown proxy-wasm ABI version and no memory"},
		{name: "not wasm", wasm: []byte("hello"), want: "invalid Wasm module: not a Wasm binary module"},
		// Each of these once reached wazero's decoder, which allocates a
		// slice as long as a declared count before reading an entry:
		// the process died with "fatal error: out of memory".
		{name: "190 bytes claiming 2^32-1 function bodies", wasm: bombModule(),
			want: "code section at byte 18: 4294967295 function bodies: more than the limit of 1000000"},
		{name: "2^32-1 locals", wasm: localsBomb(), want: "function 0 (body 0): more than 50000 locals"},
		{name: "a count past the bytes", wasm: []byte("\x00asm\x01\x00\x00\x00\x01\x03\xe8\x07\x60"),
			want: "type section at byte 8: claims 1000 types in 1 bytes"},
		{name: "a section past the end", wasm: []byte("\x00asm\x01\x00\x00\x00\x0a\xff\xff\xff\xff\x0f\x00"),
			want: "code section at byte 8 claims 4294967295 bytes; only 1 remain in the module"},
		{name: "vm_start false", guest: "rawabi", vmConfig: "vm_start: ret 0", want: "proxy_on_vm_start returned false"},
		{name: "configure false", guest: "rawabi", config: "configure: ret 0", want: "proxy_on_configure returned false"},
		// The refusal carries the last error line the plugin logged: its reason.
		{name: "configure false with a reason", guest: "rawabi", config: "configure: log 2 fine | log 4 bad\\skey | ret 0",
			want: "proxy_on_configure returned false: the plugin configuration was refused: bad key"},
		{name: "configure refuses", guest: "hostile", config: "refuse", want: "proxy_on_configure returned false"},
		{name: "configure crashes", guest: "hostile", config: "crashcfg", want: "proxy_on_configure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wasm := tt.wasm
			if tt.guest != "" {
				wasm = testGuests[tt.guest]
			}
			p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: wasm,
				VMConfig: []byte(tt.vmConfig), PluginConfig: []byte(tt.config)})
			if err == nil {
				p.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), t.Name()) {
				t.Errorf("error %q does not name the plugin and %q", err, tt.want)
			}
		})
	}
}

// TestCloseDeletesRootContext: closing a plugin tells its root context, as
// Envoy does on VM shutdown.
func TestCloseDeletesRootContext(t *testing.T) {
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: t.Name(), Wasm: testGuests["rawabi"],
		PluginConfig: []byte("delete: log 2 root\\sdeleted")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantLogs(t, t.Name(), "done id=1", "root deleted")
}
