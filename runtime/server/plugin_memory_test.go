package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestPluginLoadGivesBackItsHeap: decoding, rewriting and compiling a
// Go-built module leaves megabytes of garbage behind. Once a start's
// loads are done, and a reload's, the process holds little more Go heap
// than it still uses: the held heap is measured first, then what a
// collection finds live.
func TestPluginLoadGivesBackItsHeap(t *testing.T) {
	up := startEcho(t, "up", nil)
	module, err := os.ReadFile(rawabiWasm(t))
	if err != nil {
		t.Fatal(err)
	}
	wasm := filepath.Join(t.TempDir(), "filter.wasm")
	if err := os.WriteFile(wasm, module, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, baseConfig(fmt.Sprintf(`
[[plugins]]
name = "go"
wasm = %q
[[routes]]
name = "r"
plugins = ["go"]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = [%q]
`, wasm, up.addr)))
	// More than the heap's fragmentation (which grows with what earlier
	// tests left live) and what a request allocates; less than the 10 MiB
	// or so a load of this module leaves.
	check := func(when string) {
		t.Helper()
		var held, live runtime.MemStats
		runtime.ReadMemStats(&held)
		runtime.GC()
		runtime.ReadMemStats(&live)
		kept := held.HeapSys - held.HeapReleased
		t.Logf("%s: Go heap held %.1f MiB, live %.1f MiB", when, float64(kept)/(1<<20), float64(live.HeapAlloc)/(1<<20))
		if kept > live.HeapAlloc+live.HeapAlloc/4+4<<20 {
			t.Errorf("%s: the process holds %.1f MiB of Go heap for %.1f MiB live", when, float64(kept)/(1<<20), float64(live.HeapAlloc)/(1<<20))
		}
	}
	get := func() {
		t.Helper()
		resp, err := http.Get(ts.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d through the plugin", resp.StatusCode)
		}
	}
	check("after start")
	get()

	if err := os.WriteFile(wasm, withCustomSection(module, "v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+ts.AdminAddr()+"/plugins/reload", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /plugins/reload: %v %v", err, resp)
	}
	resp.Body.Close()
	check("after a reload")
	get()
}
