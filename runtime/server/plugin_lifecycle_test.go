package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/wasmsource/wasmsourcetest"
)

// emptyModule is the Wasm header alone.
var emptyModule = []byte("\x00asm\x01\x00\x00\x00")

// notAFilter is a valid module with a memory and no proxy-wasm ABI: it
// passes every check made before compiling and fails to load.
var notAFilter = append(append([]byte(nil), emptyModule...),
	5, 3, 1, 0x00, 0x01, // memory section: one memory, min 1 page
	7, 10, 1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00) // export "memory"

// importsModule imports the named functions from "env" (type () -> ()),
// exports the proxy-wasm 0.2.1 ABI marker and a memory.
func importsModule(names ...string) []byte {
	sec := func(id byte, body []byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
	imports := []byte{byte(len(names))}
	for _, n := range names {
		imports = append(imports, 3, 'e', 'n', 'v', byte(len(n)))
		imports = append(imports, n...)
		imports = append(imports, 0x00, 0x00) // func, type 0
	}
	exp := "proxy_abi_version_0_2_1"
	exports := append([]byte{2, byte(len(exp))}, exp...)
	exports = append(exports, 0x00, 0x00)                                  // func 0
	exports = append(exports, 6, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00) // memory 0
	m := append([]byte(nil), emptyModule...)
	m = append(m, sec(1, []byte{1, 0x60, 0, 0})...)
	m = append(m, sec(2, imports)...)
	m = append(m, sec(5, []byte{1, 0x00, 0x01})...)
	return append(m, sec(7, exports)...)
}

// TestReloadKeepsLastGoodPlugin: a reload whose plugins fail to load is
// applied for everything else; the changed plugin keeps its last good
// version, a new one follows its failure policy (closed: 503; open:
// skipped), and the reload's answer and /plugins say which and why.
func TestReloadKeepsLastGoodPlugin(t *testing.T) {
	up := startEcho(t, "up", nil)
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.wasm"), filepath.Join(dir, "bad.wasm")
	os.WriteFile(good, headerRust(t), 0o644)
	os.WriteFile(bad, notAFilter, 0o644)
	config := func(hdr, fresh, policy string) string {
		return baseConfig(`
[[plugins]]
name = "hdr"
wasm = "` + hdr + `"
config = { header = "x-hello", value = "rust" }
` + fresh + `
[[routes]]
name = "a"
match = { path_prefix = "/a" }
plugins = ["hdr"]
backends = [ { cluster = "up" } ]
` + policy + `
[[clusters]]
name = "up"
endpoints = ["` + up.addr + `"]
`)
	}
	ts := startServer(t, config(good, "", ""))
	if code, h := hello(t, ts, "/a"); code != 200 || h != "rust" {
		t.Fatalf("v1: %d %q", code, h)
	}
	sha := pluginRows(t, ts)["hdr"].SHA256

	for _, failure := range []string{"closed", "open"} {
		fresh := `
[[plugins]]
name = "new"
wasm = "` + bad + `"
failure = "` + failure + `"`
		routes := `
[[routes]]
name = "c"
match = { path_prefix = "/c" }
plugins = ["new"]
backends = [ { cluster = "up" } ]
[[routes]]
name = "d"
match = { path_prefix = "/d" }
backends = [ { cluster = "up" } ]`
		os.WriteFile(ts.path, []byte(config(bad, fresh, routes)), 0o644)
		err := ts.Reload()
		var refused *PluginsRefused
		if !errors.As(err, &refused) || len(refused.Plugins) != 2 || !strings.Contains(err.Error(), `plugin "hdr"`) || !strings.Contains(err.Error(), `plugin "new"`) || !strings.Contains(err.Error(), "ABI") {
			t.Fatalf("%s: reload: %v", failure, err)
		}
		if code, h := hello(t, ts, "/a"); code != 200 || h != "rust" {
			t.Fatalf("%s: /a %d %q: the last good version should serve", failure, code, h)
		}
		want := map[string]int{"closed": 503, "open": 200}[failure]
		if code, h := hello(t, ts, "/c"); code != want || h != "" {
			t.Fatalf("%s: /c (plugin never loaded) %d %q, want %d", failure, code, h, want)
		}
		if code, _ := hello(t, ts, "/d"); code != 200 {
			t.Fatalf("%s: /d (new route, no plugin) %d: the rest of the reload was not applied", failure, code)
		}
		rows := pluginRows(t, ts)
		if r := rows["hdr"]; r.State != "degraded" || r.SHA256 != sha || r.Failures["compile"] == 0 || !strings.Contains(r.LastError, "ABI") {
			t.Fatalf("%s: hdr %+v", failure, r)
		}
		if r := rows["new"]; r.State != "failed" || r.SHA256 != "" || r.Failures["compile"] == 0 {
			t.Fatalf("%s: new %+v", failure, r)
		}
	}
	// Back to the good module: serving, the record's error cleared.
	os.WriteFile(ts.path, []byte(config(good, "", "")), 0o644)
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := pluginRows(t, ts)["hdr"]; r.State != "serving" || r.LastError != "" || r.Failures["compile"] != 2 {
		t.Fatalf("good again: %+v", r)
	}
}

// TestMissingImportsReportedAtLoad: a module importing a host function
// sluice does not provide is refused when it loads (hostabi instantiates
// it at load), naming every missing import, not when a request first
// calls it.
func TestMissingImportsReportedAtLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "imports.wasm")
	os.WriteFile(path, importsModule("proxy_not_a_hostcall", "another_missing"), 0o644)
	cfgPath := filepath.Join(dir, "sluice.toml")
	os.WriteFile(cfgPath, []byte(baseConfig(`
[[plugins]]
name = "imp"
wasm = "`+path+`"
`)), 0o644)
	_, err := New(Options{ConfigPath: cfgPath})
	if err == nil {
		t.Fatal("a module with missing imports loaded")
	}
	if !strings.Contains(err.Error(), `plugin "imp"`) || !strings.Contains(err.Error(), "env.proxy_not_a_hostcall") || !strings.Contains(err.Error(), "env.another_missing") {
		t.Fatalf("the error does not name the plugin and the import: %v", err)
	}
	// At start the refusal is a config problem placed at the plugin's
	// wasm key, as validate reports it.
	if !strings.Contains(err.Error(), "plugins[0].wasm") {
		t.Fatalf("the error does not name the plugin's key: %v", err)
	}
}

// TestTCPListenerPluginNeverLoaded: a network filter whose module cannot
// be fetched follows its failure policy on a tcp listener too: open lets
// the bytes through without it, closed closes the connection.
func TestTCPListenerPluginNeverLoaded(t *testing.T) {
	fastSources(t, nil)
	echo := startTCPEcho(t)
	reg := wasmsourcetest.Start(nil)
	defer reg.Close()
	reg.Down.Store(true)
	ts := startServer(t, baseConfig(`
[wasm]
insecure_registries = ["`+reg.Host+`"]
[[plugins]]
name = "open"
wasm = "oci://`+reg.Host+`/filters/net:v1"
failure = "open"
[[plugins]]
name = "closed"
wasm = "oci://`+reg.Host+`/filters/net:v1"
[[listeners]]
name = "open"
address = "127.0.0.1:0"
protocols = ["tcp"]
cluster = "echo"
plugins = ["open"]
[[listeners]]
name = "closed"
address = "127.0.0.1:0"
protocols = ["tcp"]
cluster = "echo"
plugins = ["closed"]
[[routes]]
name = "r"
backends = [ { cluster = "echo" } ]
[[clusters]]
name = "echo"
endpoints = ["`+echo+`"]
`))
	o, err := net.Dial("tcp", ts.ListenerAddr("open"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	o.Write([]byte("ping"))
	if got := readN(t, o, 4); got != "ping" {
		t.Fatalf("failure = open: %q", got)
	}
	c, err := net.Dial("tcp", ts.ListenerAddr("closed"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 8)); err == nil || n != 0 {
		t.Fatalf("failure = closed: read %d, %v; want the connection closed", n, err)
	}
}
