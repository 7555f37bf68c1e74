package hostabi

import (
	"context"
	"strings"
	"testing"
)

// TestSharedVM: plugins with one vm_id and module share instances, each
// with its own root context and configuration, as in Envoy.
func TestSharedVM(t *testing.T) {
	vmID := "shared-" + t.Name()
	load := func(name, script string) (*Plugin, error) {
		return testEngine.Load(context.Background(), PluginConfig{Name: name, VMID: vmID, RootID: name,
			Wasm: testGuests["rawabi"], Instances: 1, PluginConfig: []byte(script)})
	}
	a, err := load(t.Name()+"-a", "request_headers: hdr_add 0 x-a 1 | prop_get plugin_name | prop_get plugin_root_id\ndelete: log 2 a\\sdeleted")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	b, err := load(t.Name()+"-b", "request_headers: hdr_add 0 x-b 1 | prop_get plugin_name")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if a.vm != b.vm {
		t.Fatal("plugins with one vm_id got separate VMs")
	}
	// A third with the same vm_id refusing its configuration leaves the
	// others alone.
	if _, err := load(t.Name()+"-c", "configure: ret 0"); err == nil {
		t.Fatal("refused configuration loaded")
	}
	for _, tc := range []struct {
		p          *Plugin
		want, deny string
	}{{a, "x-a=1", "x-b"}, {b, "x-b=1", "x-a"}} {
		s := newTestStream()
		if err := oneRequest(tc.p, s); err != nil {
			t.Fatal(err)
		}
		if got := s.pairs(RequestHeaders); !strings.Contains(got, tc.want) || strings.Contains(got, tc.deny) {
			t.Errorf("%s: headers %s", tc.p.Name(), got)
		}
	}
	wantLogs(t, a.Name(), "request_headers prop_get: status=0 "+a.Name())
	wantLogs(t, b.Name(), "request_headers prop_get: status=0 "+b.Name())
	if st := a.Stats(); st.Instances != 1 || st.VMID != vmID {
		t.Errorf("stats %+v", st)
	}
	// Closing one plugin deletes its root context; the other goes on.
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantLogs(t, a.Name(), "a deleted")
	if err := oneRequest(b, newTestStream()); err != nil {
		t.Fatalf("after the other plugin closed: %v", err)
	}
	if st := b.Stats(); st.Instances != 1 {
		t.Errorf("shared VM lost its instance: %+v", st)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Instances != 0 {
		t.Errorf("last plugin closed but instances remain: %+v", st)
	}
}

func TestVMNotSharedAcrossSettings(t *testing.T) {
	mk := func(name string, limit uint64, vmID string) *Plugin {
		return load(t, "rawabi", PluginConfig{Name: name, VMID: vmID, MemoryLimit: limit})
	}
	a := mk(t.Name()+"-a", 64<<20, "v-"+t.Name())
	b := mk(t.Name()+"-b", 32<<20, "v-"+t.Name())
	c := mk(t.Name()+"-c", 64<<20, "")
	d := mk(t.Name()+"-d", 64<<20, "")
	if a.vm == b.vm || c.vm == d.vm {
		t.Error("VMs shared across settings or without a vm_id")
	}
}
