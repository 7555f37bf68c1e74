package server

import (
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestPluginMetricsFollowReloads: /metrics names the plugins loaded now,
// and scraping it while the config reloads (plugins added and removed) is
// safe (run with -race).
func TestPluginMetricsFollowReloads(t *testing.T) {
	up := startEcho(t, "up", nil)
	withPlugin := func(name string) string {
		return baseConfig(`
[[plugins]]
name = "` + name + `"
wasm = "builtin:add-header"
config = { request_headers = { "x-hello" = "sluice" } }

[[routes]]
name = "r"
plugins = ["` + name + `"]
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["` + up.addr + `"]
`)
	}
	ts := startServer(t, withPlugin("first"))
	scrape := func() string {
		resp, err := http.Get("http://" + ts.AdminAddr() + "/metrics")
		if err != nil {
			t.Error(err)
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if page := scrape(); !strings.Contains(page, `sluice_wasm_plugin_loaded{plugin="first",wasm="builtin:add-header",`) {
		t.Fatalf("/metrics does not show the loaded plugin:\n%s", page)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				scrape()
			}
		}
	}()
	for i, name := range []string{"second", "third"} {
		if err := os.WriteFile(ts.path, []byte(withPlugin(name)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ts.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	page := scrape()
	if !strings.Contains(page, `sluice_wasm_plugin_loaded{plugin="third",`) || strings.Contains(page, `plugin_loaded{plugin="first",`) {
		t.Errorf("after the reloads /metrics should name third only:\n%s", page)
	}
}
