package hostabi

import (
	"context"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

func TestProperties(t *testing.T) {
	s := newTestStream()
	s.props["request.path"] = []byte("/p")
	s.props["request.size"] = []byte{42, 0, 0, 0, 0, 0, 0, 0}
	p := load(t, "rawabi", PluginConfig{RootID: "rid", VMID: "vid", PluginConfig: []byte(
		"configure: prop_get plugin_root_id | prop_get node/id | prop_set my/key v | prop_get my/key\n" +
			"request_headers: prop_get plugin_name | prop_get plugin_vm_id | prop_get request/path | prop_geti request/size" +
			" | prop_get no/such | prop_set wasm/x 1 | prop_get node/id\n")})
	hs, err := p.NewHTTPStream(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.OnDone()
	if _, err := hs.OnRequestHeaders(true); err != nil {
		t.Fatal(err)
	}
	wantLogs(t, p.Name(),
		"configure prop_get: status=0 rid", "configure prop_get: status=0 test-node",
		"configure prop_set: status=1", "configure prop_get: status=1 ", // no stream: NotFound, as Envoy
		"request_headers prop_get: status=0 "+p.Name(), "request_headers prop_get: status=0 vid",
		"request_headers prop_get: status=0 /p", "request_headers prop_geti: status=0 42",
		"request_headers prop_get: status=1 ", "request_headers prop_set: status=0")
	if string(s.props["wasm.x"]) != "1" {
		t.Errorf("set_property did not reach the stream: %q", s.props)
	}
}

// TestSetPropertyKeepsNoGuestMemory: what proxy_set_property hands the
// stream host (the path's segments and the value) is the host's own,
// so a key kept as the one segment it is (as the proxy's binding keeps
// it) and the value do not change when the guest reuses its memory.
func TestSetPropertyKeepsNoGuestMemory(t *testing.T) {
	s := newTestStream()
	hs := &HTTPStream{host: s}
	mem := make([]byte, 64)
	in := &instance{memory: &limitedMemory{buf: mem}, effStream: hs}
	path, val := uint32(0), uint32(32)
	copy(mem[path:], "sluice.consumer\x00")
	copy(mem[val:], "alice")
	if st := hcSetProperty(context.Background(), in, []uint64{uint64(path), 16, uint64(val), 5}); st != abi.OK {
		t.Fatalf("proxy_set_property: %v", st)
	}
	for i := range mem {
		mem[i] = 'x'
	}
	if v, ok := s.props["sluice.consumer"]; !ok || string(v) != "alice" || len(s.props) != 1 {
		t.Errorf("after the guest's memory changed, the properties are %q", s.props)
	}
}
