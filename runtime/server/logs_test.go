package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/runtime/config"
)

// TestReloadSaysWhatChanged: the reload line names the routes, clusters
// and plugins added, removed and changed, and how long it took.
func TestReloadSaysWhatChanged(t *testing.T) {
	a := startEcho(t, "a", nil)
	b := startEcho(t, "b", nil)
	ts := startServer(t, baseConfig(routeTo("a")+clusters(a, b)))
	extra := `
[[routes]]
name = "r2"
match = { path_prefix = "/two" }
backends = [ { cluster = "b" } ]
`
	onlyB := "\n[[clusters]]\nname = \"b\"\nendpoints = [\"" + b.addr + "\"]\n"
	if err := os.WriteFile(ts.path, []byte(baseConfig(routeTo("b")+extra+onlyB)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	var msg string
	for _, e := range ts.logs.All() {
		if strings.HasPrefix(e.Message, "config reloaded") {
			msg = e.Message
		}
	}
	if !strings.HasPrefix(msg, "config reloaded in ") || !strings.HasSuffix(msg, ": routes +r2 ~r; clusters -a; plugins unchanged") {
		t.Errorf("reload line %q, want the time taken and routes +r2 ~r; clusters -a; plugins unchanged", msg)
	}
}

// TestConnectionIDAndClusterMetadataProperties: a Wasm filter reads
// connection.id (one per client connection, the same for its requests)
// and the cluster's metadata.
func TestConnectionIDAndClusterMetadataProperties(t *testing.T) {
	a := startEcho(t, "a", nil)
	ts := startServer(t, baseConfig(fmt.Sprintf(`
[[plugins]]
name = "peek"
wasm = %q
config_raw = "response_headers: prop_geti connection/id | prop_get cluster_metadata/filter_metadata/team/owner | ret 0\n"
[[routes]]
name = "r"
plugins = ["peek"]
backends = [ { cluster = "a" } ]
[[clusters]]
name = "a"
endpoints = [%q]
metadata = { filter_metadata = { team = { owner = "payments" } } }
`, rawabiWasm(t), a.addr)))
	ids := map[string]int{}
	for conn := 0; conn < 2; conn++ {
		// Two requests on each of two connections.
		c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
		for i := 0; i < 2; i++ {
			resp, _ := getJSON(t, c, mustReq(t, "GET", ts.url("/"), nil))
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		c.CloseIdleConnections()
	}
	waitMessage(t, ts, "prop_get: status=0 payments")
	for _, e := range ts.logs.All() {
		if _, id, ok := strings.Cut(e.Message, "prop_geti: status=0 "); ok {
			ids[id]++
		}
	}
	if len(ids) != 2 || ids["0"] != 0 {
		t.Errorf("connection ids seen %v, want two non-zero ids, each on two requests", ids)
	}
	for id, n := range ids {
		if n != 2 {
			t.Errorf("connection id %s on %d requests, want 2", id, n)
		}
	}
}

// TestConfigureHTTPCallAtStart: a plugin that calls a cluster from
// proxy_on_configure (fetching keys, say) reaches it at start-up, when no
// snapshot serves yet, and validate's dry run accepts the same config
// without dispatching the call.
func TestConfigureHTTPCallAtStart(t *testing.T) {
	called := make(chan string, 4)
	a := startEcho(t, "a", func(w http.ResponseWriter, r *http.Request) { called <- r.URL.Path })
	cfg := baseConfig(fmt.Sprintf(`
[[plugins]]
name = "fetch"
wasm = %q
config_raw = "configure: http_call a :method=GET,:path=/keys,:authority=a - 1000 | ret 1\n"
[[routes]]
name = "r"
plugins = ["fetch"]
backends = [ { cluster = "a" } ]
[[clusters]]
name = "a"
endpoints = [%q]
`, rawabiWasm(t), a.addr))
	ts := startServer(t, cfg)
	waitMessage(t, ts, "http_call: status=0")
	select {
	case p := <-called:
		if p != "/keys" {
			t.Errorf("the upstream got %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the configure-time http_call never reached its cluster")
	}
	// The dry run: loads the plugin, sends nothing.
	parsed, err := config.Load(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPlugins(context.Background(), parsed); err != nil {
		t.Fatalf("CheckPlugins: %v", err)
	}
	select {
	case p := <-called:
		t.Errorf("the dry run dispatched an http_call to %s", p)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestPluginHotLoadSaysWhatChanged: a changed .wasm file's reload names
// the plugin and how long it took.
func TestPluginHotLoadSaysWhatChanged(t *testing.T) {
	ts, wasmPath := startHotPlugin(t, "")
	if err := os.WriteFile(wasmPath, withCustomSection(plugins.RustModule("add-header"), "v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ts.ReloadPlugins(); err != nil {
		t.Fatal(err)
	}
	msg := ""
	for _, e := range ts.logs.All() {
		if strings.HasPrefix(e.Message, "plugin modules reloaded") {
			msg = e.Message
		}
	}
	if !strings.HasPrefix(msg, "plugin modules reloaded in ") || !strings.HasSuffix(msg, ": plugins ~hdr") {
		t.Errorf("hot-load line %q, want the time taken and plugins ~hdr", msg)
	}
}
