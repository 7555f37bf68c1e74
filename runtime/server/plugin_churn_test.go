package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/wasmsource/wasmsourcetest"
)

// envInt reads a positive count from the environment, else def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// churnConfig is generation gen of a config whose plugins all carry gen:
// add-header (x-gen), the header-rust file (x-file), the same filter by
// OCI digest (x-remote) and, every third generation, a second add-header
// (x-extra). A request that saw a mix of generations, or a plugin
// skipped, would carry different values.
func churnConfig(gen int, up, wasmFile, registry, digest string) string {
	v := strconv.Itoa(gen)
	plugins := []string{`"gen"`, `"file"`, `"remote"`}
	extra := ""
	if gen%3 == 0 {
		plugins = append(plugins, `"extra"`)
		extra = `
[[plugins]]
name = "extra"
wasm = "builtin:add-header"
config = { request_headers = { "x-extra" = "` + v + `" } }`
	}
	return baseConfig(`
[wasm]
insecure_registries = ["` + registry + `"]
[[plugins]]
name = "gen"
wasm = "builtin:add-header"
config = { request_headers = { "x-gen" = "` + v + `" } }
[[plugins]]
name = "file"
wasm = "` + wasmFile + `"
config = { header = "x-file", value = "` + v + `" }
vm = { call_timeout = "5s" }
[[plugins]]
name = "remote"
wasm = "oci://` + registry + `/filters/hello@sha256:` + digest + `"
config = { header = "x-remote", value = "` + v + `" }
vm = { call_timeout = "5s" }
` + extra + `
[[routes]]
name = "live"
match = { path_prefix = "/" }
plugins = [` + strings.Join(plugins, ", ") + `]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["` + up + `"]
`)
}

// TestPluginChurnUnderLoad reloads a config whose plugins all change every
// generation (config reloads; every 5th the .wasm file changes, every 7th
// the OCI digest) while clients send requests without pause: no request
// fails, and none is served by a mix of generations or with a plugin
// missing. SLUICE_CHURN_RELOADS sets the count (default 30; the issue's
// figure is 1000).
func TestPluginChurnUnderLoad(t *testing.T) {
	reloads := envInt("SLUICE_CHURN_RELOADS", 30)
	up := startEcho(t, "up", nil)
	mod := headerRust(t)
	variants := [][]byte{mod, withCustomSection(mod, "v2")}
	reg := wasmsourcetest.Start(nil)
	defer reg.Close()
	var digests []string
	for _, v := range variants {
		d, err := reg.Push("filters/hello:"+sha256Hex(v)[:8], must(wasmsourcetest.ArtifactImage(v)))
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	dir := t.TempDir()
	wasmFile := filepath.Join(dir, "hello.wasm")
	os.WriteFile(wasmFile, variants[0], 0o644)
	ts := startServer(t, churnConfig(0, up.addr, wasmFile, reg.Host, digests[0]))
	// Both digests in the module cache first: a digest change then loads
	// at once, as in production after the first pull.
	for i, d := range []string{digests[1], digests[0]} {
		os.WriteFile(ts.path, []byte(churnConfig(0, up.addr, wasmFile, reg.Host, d)), 0o644)
		ts.Reload()
		eventually(t, "digest "+strconv.Itoa(i)+" serving", func() bool {
			r := pluginRows(t, ts)["remote"]
			return r.Digest == d && r.State == "serving"
		})
	}

	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	fail := func(s string) {
		failed.Add(1)
		firstFailure.CompareAndSwap(nil, s)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for n := 0; n < 2_000_000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(ts.url("/"))
				if err != nil {
					fail(err.Error())
					continue
				}
				var e echoReply
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				json.Unmarshal(b, &e)
				gen, file, remote, extra := e.Header["X-Gen"], e.Header["X-File"], e.Header["X-Remote"], e.Header["X-Extra"]
				switch {
				case resp.StatusCode != 200:
					fail(fmt.Sprintf("status %d: %s", resp.StatusCode, b))
				case len(gen) != 1 || len(file) != 1 || len(remote) != 1:
					fail(fmt.Sprintf("a plugin missing: x-gen %v x-file %v x-remote %v", gen, file, remote))
				case file[0] != gen[0] || remote[0] != gen[0] || len(extra) > 0 && extra[0] != gen[0]:
					fail(fmt.Sprintf("mixed generations: x-gen %v x-file %v x-remote %v x-extra %v", gen, file, remote, extra))
				default:
					ok.Add(1)
				}
			}
		}()
	}
	began := time.Now()
	fileVariant, digest := 0, 0
	for gen := 1; gen <= reloads; gen++ {
		if gen%5 == 0 {
			fileVariant = 1 - fileVariant
			os.WriteFile(wasmFile, variants[fileVariant], 0o644)
		}
		if gen%7 == 0 {
			digest = 1 - digest
		}
		os.WriteFile(ts.path, []byte(churnConfig(gen, up.addr, wasmFile, reg.Host, digests[digest])), 0o644)
		if err := ts.Reload(); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("reload %d: %v", gen, err)
		}
	}
	took := time.Since(began)
	close(stop)
	wg.Wait()
	total := ok.Load() + failed.Load()
	t.Logf("%d reloads in %v under load: %d requests (%.0f req/s), %d failed", reloads, took.Round(time.Millisecond), total, float64(total)/took.Seconds(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d of %d requests failed; first: %v", failed.Load(), total, firstFailure.Load())
	}
	for name, r := range pluginRows(t, ts) {
		if r.State != "serving" {
			t.Errorf("after the churn %s is %s: %s", name, r.State, r.LastError)
		}
	}
}
