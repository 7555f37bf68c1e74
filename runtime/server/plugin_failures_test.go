package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// trapAfter is the header count at which trapModule traps.
const trapAfter = 20

// trapModule is a proxy-wasm filter whose proxy_on_request_headers traps
// when the request has trapAfter headers or more (a client adds padding
// headers to make it), through two functions of its own, and lets other
// requests through. Its name section names the functions on the trap's
// path: filter_headers (the export), enforce_policy, check_quota.
func trapModule() []byte {
	const i32 = 0x7f
	body := func(code ...byte) []byte {
		b := append([]byte{0x00}, append(code, 0x0b)...) // no locals; end
		return append(uleb(len(b)), b...)
	}
	export := func(name string, kind, idx byte) []byte { return wjoin(wname(name), []byte{kind, idx}) }
	funcName := func(idx byte, name string) []byte { return wjoin([]byte{idx}, wname(name)) }
	names := wvec(funcName(3, "filter_headers"), funcName(4, "check_quota"), funcName(5, "enforce_policy"))
	return wjoin([]byte("\x00asm\x01\x00\x00\x00"),
		wsec(1, wvec([]byte{0x60, 0, 0}, []byte{0x60, 1, i32, 1, i32}, []byte{0x60, 2, i32, i32, 0}, []byte{0x60, 3, i32, i32, i32, 1, i32})),
		wsec(3, wvec([]byte{0}, []byte{1}, []byte{2}, []byte{3}, []byte{0}, []byte{0})),
		wsec(5, wvec([]byte{0x00, 0x01})),
		wsec(7, wvec(export("proxy_abi_version_0_2_1", 0, 0), export("proxy_on_memory_allocate", 0, 1),
			export("proxy_on_context_create", 0, 2), export("proxy_on_request_headers", 0, 3), export("memory", 2, 0))),
		wsec(10, wvec(body(), body(0x41, 0x80, 0x08), body(),
			// local.get 1; i32.const trapAfter; i32.ge_u; if; call enforce_policy; end; i32.const 0
			body(0x20, 0x01, 0x41, trapAfter, 0x4f, 0x04, 0x40, 0x10, 0x05, 0x0b, 0x41, 0x00),
			body(0x00),       // check_quota: unreachable
			body(0x10, 0x04), // enforce_policy: call check_quota
		)),
		wsec(0, wjoin(wname("name"), []byte{1}, uleb(len(names)), names)))
}

// trapServer runs sluice with trapModule as plugin "trap" (failing
// closed) on route /t, and the module's sha256.
func trapServer(t *testing.T, vm string) (*testServer, string) {
	up := startEcho(t, "up", nil)
	mod := trapModule()
	path := filepath.Join(t.TempDir(), "trap.wasm")
	if err := os.WriteFile(path, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(mod)
	ts := startServer(t, baseConfig(`
[[plugins]]
name = "trap"
wasm = "`+path+`"
`+vm+`
[[routes]]
name = "t"
match = { path_prefix = "/t" }
plugins = ["trap"]
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	return ts, hex.EncodeToString(sum[:])
}

// get sends GET /t, with padding headers enough to make trapModule trap
// when trap is set, and the request id when one is given.
func (ts *testServer) getTrap(t *testing.T, trap bool, requestID string) int {
	t.Helper()
	req := mustReq(t, "GET", ts.url("/t"), nil)
	if trap {
		for i := range trapAfter {
			req.Header.Set(fmt.Sprintf("x-pad-%d", i), "1")
		}
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /t: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestTrapLogNamesPluginDigestRequestCallbackAndStack: a guest that traps
// in a request's proxy_on_request_headers, through the proxy, logs one
// line with the plugin, its module's digest, the stream's x-request-id,
// the callback and the Wasm stack with the function names of its name
// section, innermost first.
func TestTrapLogNamesPluginDigestRequestCallbackAndStack(t *testing.T) {
	ts, digest := trapServer(t, "")
	if code := ts.getTrap(t, false, ""); code != 200 {
		t.Fatalf("a request that does not trap: %d", code)
	}
	const rid = "3f0c5bd2-trap-test"
	if code := ts.getTrap(t, true, rid); code != 503 {
		t.Fatalf("a request that traps, failing closed: %d, want 503", code)
	}
	lines := ts.logs.FilterMessage("wasm instance failed; it is replaced").All()
	if len(lines) != 1 {
		t.Fatalf("%d failure lines, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	for key, want := range map[string]string{
		"plugin":     "trap",
		"digest":     digest,
		"request_id": rid,
		"callback":   "proxy_on_request_headers",
		"cause":      "trap",
		"wasm_stack": "[check_quota() enforce_policy() filter_headers(i32,i32,i32) i32]",
	} {
		if got := fmt.Sprint(f[key]); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if e := fmt.Sprint(f["error"]); !strings.Contains(e, "unreachable") || strings.Contains(e, "stack") {
		t.Errorf("error = %q: want the trap, without the stack (in wasm_stack)", e)
	}
	if code := ts.getTrap(t, false, ""); code != 200 {
		t.Fatalf("after the trap: %d; the instance should be replaced", code)
	}
}

// failingGauge reads sluice_wasm_plugin_failing{plugin="trap"} from
// /metrics ("" when absent).
func failingGauge(t *testing.T, ts *testServer) string {
	t.Helper()
	resp, err := http.Get("http://" + ts.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, `sluice_wasm_plugin_failing{plugin="trap"} `); ok {
			return v
		}
	}
	return ""
}

// TestPluginThatKeepsFailingIsReported: through the proxy, a trap costs
// one request (503, failing closed) and the plugin recovers on its own;
// a plugin that traps on request after request is reported failing after
// five in a row (/plugins state "failing" with the count, the gauge at 1,
// one warning however many more fail) and returns to serving, with one
// info line, once a request is served again; no restart in between.
func TestPluginThatKeepsFailingIsReported(t *testing.T) {
	ts, _ := trapServer(t, `vm = { restart_backoff = "5ms" }`)
	if code := ts.getTrap(t, true, ""); code != 503 {
		t.Fatalf("a trap: %d, want 503", code)
	}
	eventually(t, "the plugin serves again after one trap", func() bool { return ts.getTrap(t, false, "") == 200 })
	// The plugin's state is settled when the stream ends, which may be
	// just after the client has the whole response.
	eventually(t, "the plugin is reported serving", func() bool {
		return pluginRows(t, ts)["trap"].State == "serving" && failingGauge(t, ts) == "0"
	})

	// Trap after trap (a request during the backoff gets 503 without
	// reaching the guest), until the plugin is reported failing.
	eventually(t, "the plugin is reported failing", func() bool {
		if code := ts.getTrap(t, true, ""); code != 503 {
			t.Fatalf("a trap: %d, want 503", code)
		}
		return pluginRows(t, ts)["trap"].State == "failing"
	})
	r := pluginRows(t, ts)["trap"]
	if r.ConsecutiveFailures < 5 || failingGauge(t, ts) != "1" {
		t.Fatalf("failing: %+v, gauge %q", r, failingGauge(t, ts))
	}
	// More failures while failing: no more warnings.
	failures := r.ConsecutiveFailures
	eventually(t, "two more failures", func() bool {
		ts.getTrap(t, true, "")
		return pluginRows(t, ts)["trap"].ConsecutiveFailures >= failures+2
	})
	warn := ts.logs.FilterMessageSnippet("plugin keeps failing").All()
	if len(warn) != 1 || warn[0].ContextMap()["plugin"] != "trap" {
		t.Fatalf("%d warnings, want one naming the plugin: %+v", len(warn), warn)
	}

	// Requests that do not trap: served once the backoff has passed.
	eventually(t, "the plugin serves again", func() bool { return ts.getTrap(t, false, "") == 200 })
	eventually(t, "the plugin is reported recovered", func() bool {
		r := pluginRows(t, ts)["trap"]
		return r.State == "serving" && r.ConsecutiveFailures == 0 && failingGauge(t, ts) == "0"
	})
	if n := len(ts.logs.FilterMessageSnippet("plugin recovered").All()); n != 1 {
		t.Fatalf("%d recovery lines, want 1", n)
	}
	if n := len(ts.logs.FilterMessageSnippet("plugin keeps failing").All()); n != 1 {
		t.Fatalf("%d warnings after recovery, want still 1", n)
	}
}
