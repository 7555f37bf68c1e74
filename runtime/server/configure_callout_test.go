package server

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// A reload that adds a cluster and a plugin calling it from
// proxy_on_configure: the new generation's clusters exist before its
// plugins configure, as at start (Envoy's cluster manager is up before
// plugins configure), so the call is dispatched and answered.
func TestReloadPluginCallsNewClusterAtConfigure(t *testing.T) {
	a := startEcho(t, "a", nil)
	b := startEcho(t, "b", nil)
	ts := startServer(t, baseConfig(routeTo("a")+`
[[clusters]]
name = "a"
endpoints = ["`+a.addr+`"]
`))
	next := baseConfig(routeTo("a")+clusters(a, b)) + fmt.Sprintf(`
[[plugins]]
name = "p"
wasm = %q
config_raw = '''
configure: http_call b :method=GET,:path=/from-configure,:authority=b - 2000
http_call_response: buf_get 4 0 64
'''
`, rawabiWasm(t))
	if err := os.WriteFile(ts.path, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ts.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	want := `http_call_response buf_get: status=0 {"name":"b","method":"GET","path":"/from-configure"`
	deadline := time.Now().Add(5 * time.Second)
	for {
		var lines []string
		for _, e := range ts.logs.FilterField(zap.String("plugin", "p")).All() {
			if strings.HasPrefix(e.Message, want) {
				return
			}
			lines = append(lines, e.Message)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the plugin's lines: %q", want, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
