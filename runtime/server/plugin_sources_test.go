package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/wasmsource"
	"github.com/sluice-proxy/sluice/runtime/wasmsource/wasmsourcetest"
)

// headerRust is a committed example filter: adds x-hello: rust upstream.
func headerRust(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../examples/filters/header-rust/header-rust.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var sourceOptsMu sync.Mutex

// fastSources shortens the fetch backoff (and trusts tlsClient's
// certificate, if any) for the servers the test starts.
func fastSources(t *testing.T, transport http.RoundTripper) {
	sourceOptsMu.Lock()
	testSourceOptions = func(o *wasmsource.Options) {
		o.RetryBase, o.RetryMax, o.MaxAttempts = 20*time.Millisecond, 200*time.Millisecond, 1000
		if transport != nil {
			o.Transport = transport
		}
	}
	t.Cleanup(func() {
		testSourceOptions = nil
		sourceOptsMu.Unlock()
	})
}

type pluginRow struct {
	Name      string            `json:"name"`
	Wasm      string            `json:"wasm"`
	SHA256    string            `json:"sha256"`
	State     string            `json:"state"`
	Source    string            `json:"source"`
	Digest    string            `json:"digest"`
	Layout    string            `json:"layout"`
	Instances int               `json:"instances"`
	Failures  map[string]uint64 `json:"failures"`
	LastError string            `json:"last_error"`
	LoadTime  *time.Time        `json:"load_time"`

	ConsecutiveFailures int `json:"consecutive_failures"`
}

func pluginRows(t *testing.T, ts *testServer) map[string]pluginRow {
	t.Helper()
	resp, err := http.Get("http://" + ts.AdminAddr() + "/plugins")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []pluginRow
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	m := map[string]pluginRow{}
	for _, r := range list {
		m[r.Name] = r
	}
	return m
}

// eventually polls cond for up to 30s (a bound, not a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hello GETs path and returns the status and the x-hello header the
// upstream saw ("" without the plugin).
func hello(t *testing.T, ts *testServer, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(ts.url(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var e echoReply
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &e)
	return resp.StatusCode, strings.Join(e.Header["X-Hello"], ",")
}

func remoteConfig(up, registries, wasm, extra string) string {
	return baseConfig(`
[wasm]
cache_dir = "` + registries + `"
insecure_registries = ["127.0.0.1"]
[[plugins]]
name = "remote"
wasm = "` + wasm + `"
config = { header = "x-hello", value = "rust" }
` + extra + `
[[routes]]
name = "a"
match = { path_prefix = "/a" }
plugins = ["remote"]
backends = [ { cluster = "up" } ]
[[routes]]
name = "b"
match = { path_prefix = "/b" }
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["` + up + `"]
`)
}

// TestRemotePluginDownAtStart: a registry that is down does not stop
// sluice from starting; the rest of the config serves, the plugin's routes
// answer by its failure policy, /plugins and the metrics say why, and the
// plugin serves once the registry is back, without a reload.
func TestRemotePluginDownAtStart(t *testing.T) {
	fastSources(t, nil)
	up := startEcho(t, "up", nil)
	for _, policy := range []string{"closed", "open"} {
		t.Run(policy, func(t *testing.T) {
			reg := wasmsourcetest.Start(nil)
			defer reg.Close()
			reg.Down.Store(true)
			cfg := remoteConfig(up.addr, t.TempDir(), "oci://"+reg.Host+"/filters/hello:v1", `failure = "`+policy+`"`)
			cfg = strings.Replace(cfg, `insecure_registries = ["127.0.0.1"]`, `insecure_registries = ["`+reg.Host+`"]`, 1)
			ts := startServer(t, cfg)

			if code, _ := hello(t, ts, "/b"); code != 200 {
				t.Fatalf("/b (no plugin) answered %d", code)
			}
			want := 503
			if policy == "open" {
				want = 200
			}
			if code, h := hello(t, ts, "/a"); code != want || h != "" {
				t.Fatalf("/a while the registry is down: %d x-hello %q; want %d without the plugin", code, h, want)
			}
			eventually(t, "a fetch failure in /plugins", func() bool { return pluginRows(t, ts)["remote"].Failures["fetch"] > 0 })
			row := pluginRows(t, ts)["remote"]
			if row.State != "fetching" && row.State != "failed" || row.SHA256 != "" || !strings.Contains(row.LastError, "503") || row.Source != "oci://"+reg.Host+"/filters/hello:v1" {
				t.Fatalf("/plugins while down: %+v", row)
			}
			if m := metricsText(t, ts); !strings.Contains(m, `sluice_plugin_load_failures_total{plugin="remote",cause="fetch"}`) {
				t.Fatalf("no failure metric:\n%s", m)
			}

			reg.Down.Store(false)
			digest, err := reg.Push("filters/hello:v1", must(wasmsourcetest.ArtifactImage(headerRust(t))))
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "the plugin serving", func() bool { code, h := hello(t, ts, "/a"); return code == 200 && h == "rust" })
			row = pluginRows(t, ts)["remote"]
			if row.State != "serving" || row.Digest != digest || row.Layout != wasmsource.LayoutArtifact || row.LoadTime == nil || row.Instances < 1 || row.LastError != "" {
				t.Fatalf("/plugins once loaded: %+v", row)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func metricsText(t *testing.T, ts *testServer) string {
	resp, err := http.Get("http://" + ts.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRemotePluginKeepsLastGoodVersion: with pull_policy Always, a new
// image under the tag that does not compile, then a registry that is
// down, each leave the last good version serving, reported as degraded
// with the cause; a good new image then takes over.
func TestRemotePluginKeepsLastGoodVersion(t *testing.T) {
	fastSources(t, nil)
	up := startEcho(t, "up", nil)
	reg := wasmsourcetest.Start(nil)
	defer reg.Close()
	good := headerRust(t)
	first, _ := reg.Push("filters/hello:v1", must(wasmsourcetest.OCIImage(good)))
	cfg := remoteConfig(up.addr, t.TempDir(), "oci://"+reg.Host+"/filters/hello:v1", `pull_policy = "Always"`)
	cfg = strings.Replace(cfg, `insecure_registries = ["127.0.0.1"]`, `insecure_registries = ["`+reg.Host+`"]`, 1)
	ts := startServer(t, cfg)
	eventually(t, "v1 serving", func() bool { code, h := hello(t, ts, "/a"); return code == 200 && h == "rust" })
	if row := pluginRows(t, ts)["remote"]; row.Digest != first || row.State != "serving" {
		t.Fatalf("v1: %+v", row)
	}
	servingSHA := pluginRows(t, ts)["remote"].SHA256

	reload := func() {
		resp, err := http.Post("http://"+ts.AdminAddr()+"/plugins/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A module that does not compile.
	reg.Push("filters/hello:v1", must(wasmsourcetest.DockerImage([]byte("\x00asm\x01\x00\x00\x00garbage"))))
	reload()
	eventually(t, "the compile failure reported", func() bool { return pluginRows(t, ts)["remote"].Failures["compile"] > 0 })
	row := pluginRows(t, ts)["remote"]
	if row.State != "degraded" || row.SHA256 != servingSHA || row.Digest != first || row.LastError == "" {
		t.Fatalf("after a bad image: %+v", row)
	}
	if code, h := hello(t, ts, "/a"); code != 200 || h != "rust" {
		t.Fatalf("after a bad image: %d %q; the last good version should serve", code, h)
	}
	// The registry goes down.
	reg.Down.Store(true)
	before := pluginRows(t, ts)["remote"].Failures["fetch"]
	reload()
	eventually(t, "the fetch failure reported", func() bool { return pluginRows(t, ts)["remote"].Failures["fetch"] > before })
	if code, h := hello(t, ts, "/a"); code != 200 || h != "rust" {
		t.Fatalf("registry down: %d %q", code, h)
	}
	// Back, with a good new version (same filter, another custom section).
	reg.Down.Store(false)
	second, _ := reg.Push("filters/hello:v1", must(wasmsourcetest.DockerImage(withCustomSection(good, "v2"))))
	reload()
	eventually(t, "v2 serving", func() bool { r := pluginRows(t, ts)["remote"]; return r.Digest == second && r.State == "serving" })
	if r := pluginRows(t, ts)["remote"]; r.Layout != wasmsource.LayoutDockerImage || r.SHA256 == servingSHA {
		t.Fatalf("v2: %+v", r)
	}
	if code, h := hello(t, ts, "/a"); code != 200 || h != "rust" {
		t.Fatalf("v2: %d %q", code, h)
	}
}

// TestRemotePluginFromCacheWithRegistryDown: a restart with the registry
// down loads the plugin pulled by digest from the module cache before the
// first request, with no network.
func TestRemotePluginFromCacheWithRegistryDown(t *testing.T) {
	fastSources(t, nil)
	up := startEcho(t, "up", nil)
	reg := wasmsourcetest.Start(nil)
	defer reg.Close()
	digest, _ := reg.Push("filters/hello:v1", must(wasmsourcetest.OCIImage(headerRust(t))))
	cache := t.TempDir()
	cfg := remoteConfig(up.addr, cache, "oci://"+reg.Host+"/filters/hello@sha256:"+digest, "")
	cfg = strings.Replace(cfg, `insecure_registries = ["127.0.0.1"]`, `insecure_registries = ["`+reg.Host+`"]`, 1)
	first := startServer(t, cfg)
	eventually(t, "first pull", func() bool { return pluginRows(t, first)["remote"].State == "serving" })
	first.Shutdown(t.Context())

	reg.Down.Store(true)
	manifests := reg.Manifests.Load()
	ts := startServer(t, cfg)
	if code, h := hello(t, ts, "/a"); code != 200 || h != "rust" {
		t.Fatalf("restart from cache: %d %q", code, h)
	}
	if row := pluginRows(t, ts)["remote"]; row.State != "serving" || row.Digest != digest {
		t.Fatalf("restart from cache: %+v", row)
	}
	if reg.Manifests.Load() != manifests {
		t.Fatal("IfNotPresent by digest asked the registry")
	}
}

// TestHTTPSPlugin: an https:// source with the right sha256 serves; a
// wrong sha256 never loads (verify failure, 503 on its route, the rest
// serving).
func TestHTTPSPlugin(t *testing.T) {
	mod := headerRust(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(mod) }))
	defer srv.Close()
	fastSources(t, srv.Client().Transport)
	up := startEcho(t, "up", nil)
	for _, tc := range []struct {
		sha  string
		want int
	}{{sha256Hex(mod), 200}, {strings.Repeat("0", 64), 503}} {
		ts := startServer(t, remoteConfig(up.addr, t.TempDir(), srv.URL+"/hello.wasm", `sha256 = "`+tc.sha+`"`))
		if tc.want == 200 {
			eventually(t, "https plugin serving", func() bool { code, h := hello(t, ts, "/a"); return code == 200 && h == "rust" })
			continue
		}
		eventually(t, "verify failure", func() bool { return pluginRows(t, ts)["remote"].Failures["verify"] > 0 })
		if row := pluginRows(t, ts)["remote"]; row.State != "failed" || !strings.Contains(row.LastError, "not "+tc.sha) {
			t.Fatalf("wrong sha256: %+v", row)
		}
		if code, _ := hello(t, ts, "/a"); code != 503 {
			t.Fatalf("wrong sha256: /a answered %d", code)
		}
		if code, _ := hello(t, ts, "/b"); code != 200 {
			t.Fatalf("wrong sha256: /b answered %d", code)
		}
	}
}
