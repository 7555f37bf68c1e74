package server

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/runtime/config"
)

// A few lines of the Wasm binary encoding, for modules no toolchain would
// write.
func uleb(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func wsec(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb(len(body))...), body...)
}

func wvec(items ...[]byte) []byte {
	b := uleb(len(items))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func wname(s string) []byte { return append(uleb(len(s)), s...) }

func wjoin(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// filterModule is a complete proxy-wasm filter (ABI 0.2.1, one page of
// memory) whose proxy_on_request_headers runs headers, which leaves the
// action on the stack.
func filterModule(headers []byte) []byte {
	const i32 = 0x7f
	body := func(code ...byte) []byte {
		b := append([]byte{0x00}, append(code, 0x0b)...) // no locals; end
		return append(uleb(len(b)), b...)
	}
	export := func(name string, kind, idx byte) []byte { return wjoin(wname(name), []byte{kind, idx}) }
	return wjoin([]byte("\x00asm\x01\x00\x00\x00"),
		wsec(1, wvec([]byte{0x60, 0, 0}, []byte{0x60, 1, i32, 1, i32}, []byte{0x60, 2, i32, i32, 0}, []byte{0x60, 3, i32, i32, i32, 1, i32})),
		wsec(3, wvec([]byte{0}, []byte{1}, []byte{2}, []byte{3})),
		wsec(5, wvec([]byte{0x00, 0x01})),
		wsec(7, wvec(export("proxy_abi_version_0_2_1", 0, 0), export("proxy_on_memory_allocate", 0, 1),
			export("proxy_on_context_create", 0, 2), export("proxy_on_request_headers", 0, 3), export("memory", 2, 0))),
		wsec(10, wvec(body(), body(0x41, 0x80, 0x08), body(), body(headers...))))
}

// escapeModule spins in proxy_on_request_headers writing globals 0 and 1,
// which it does not declare: the budget and the interrupt flag once the
// deadline rewrite appends them. It holds the budget up (so the guest
// never exits to Go: a garbage collection's stop-the-world waits on it
// for good, and the whole process with it) and the flag down.
func escapeModule() []byte {
	return filterModule([]byte{
		0x03, 0x40, // loop
		0x41, 0xff, 0xff, 0xff, 0xff, 0x07, 0x24, 0x00, // global.set 0 (i32.const 2^31-1)
		0x41, 0x00, 0x24, 0x01, // global.set 1 (i32.const 0)
		0x0c, 0x00, 0x0b, // br 0; end
		0x41, 0x00, // i32.const 0
	})
}

// bombModule is 190 bytes whose code section claims 2^32-1 function
// bodies: wazero's decoder would allocate for all of them at once.
func bombModule() []byte {
	m := wjoin([]byte("\x00asm\x01\x00\x00\x00"), wsec(1, wvec([]byte{0x60, 0, 0})), wsec(3, wvec([]byte{0})))
	code := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	for len(m)+3+len(code) < 190 {
		code = append(code, 0x0b)
	}
	return append(m, wsec(10, code)...)
}

// TestHotLoadOfBadModuleKeepsOldVersion: bad modules landing on disk where
// a serving plugin's .wasm is (one that would escape the deadline
// rewrite, one whose counts would exhaust memory, one over
// max_module_bytes, /dev/zero) are each refused with a clear error; the
// old version keeps serving through the proxy and the admin listener
// keeps answering.
func TestHotLoadOfBadModuleKeepsOldVersion(t *testing.T) {
	good := plugins.RustModule("add-header")
	limit := len(good) + 1<<20
	ts, wasmPath := startHotPlugin(t, "[wasm]\nmax_module_bytes = "+itoa(limit)+"\n")
	admin := ts.AdminAddr()
	first := pluginSHA(t, admin)
	c := &http.Client{Timeout: 5 * time.Second}
	stillServing := func(t *testing.T) {
		t.Helper()
		resp, err := c.Get(ts.url("/"))
		if err != nil {
			t.Fatalf("proxy: %v", err)
		}
		var e echoReply
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(e.Header["X-Hot"]) != 1 {
			t.Fatalf("proxy answered %d with x-hot %v; the old version should serve", resp.StatusCode, e.Header["X-Hot"])
		}
		if sha := pluginSHA(t, admin); sha != first {
			t.Fatalf("the serving module changed to %s", sha)
		}
	}
	stillServing(t)

	for _, tc := range []struct {
		name  string
		write func(t *testing.T)
		want  string
	}{
		{"escapes the rewrite", writeFile(wasmPath, escapeModule()),
			"invalid Wasm module: code section at byte 161: function 3 (body 3): opcode 0x24 at byte 9 of the body: global 0 is not declared (the module has 0)"},
		{"190-byte count bomb", writeFile(wasmPath, bombModule()),
			"invalid Wasm module: code section at byte 18: 4294967295 function bodies: more than the limit of 1000000"},
		{"over max_module_bytes", writeFile(wasmPath, append(append([]byte(nil), good...), make([]byte, 2<<20)...)),
			"is " + sizeText(len(good)+2<<20) + ", more than the limit of " + sizeText(limit)},
		{"/dev/zero", func(t *testing.T) {
			os.Remove(wasmPath)
			if err := os.Symlink("/dev/zero", wasmPath); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file (a character device)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.write(t)
			resp, err := c.Post("http://"+admin+"/plugins/reload", "", nil)
			if err != nil {
				t.Fatalf("POST /plugins/reload: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || !strings.Contains(string(b), tc.want) {
				t.Fatalf("reload answered %d %s; want 400 with %q", resp.StatusCode, b, tc.want)
			}
			stillServing(t)
		})
	}
}

// TestDevZeroRefusedAtStart: a config naming /dev/zero as a plugin's
// module or as an endpoints file is refused at start with the key and the
// reason, instead of reading without end.
func TestDevZeroRefusedAtStart(t *testing.T) {
	for name, extra := range map[string]string{
		"wasm": `
[[plugins]]
name = "z"
wasm = "/dev/zero"`,
		"endpoints_file": `
[[routes]]
name = "r"
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints_file = "/dev/zero"`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sluice.toml")
			if err := os.WriteFile(path, []byte(baseConfig(extra)), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := New(Options{ConfigPath: path})
			if err == nil {
				s.Shutdown(t.Context())
				t.Fatal("New accepted /dev/zero")
			}
			if !strings.Contains(err.Error(), name+": /dev/zero is not a regular file (a character device)") {
				t.Fatalf("error %q does not name the key and the reason", err)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// sizeText is how config errors print a size.
func sizeText(n int) string {
	b, _ := config.Size(n).MarshalText()
	if s := string(b); s != itoa(n) {
		return s
	}
	return itoa(n) + " bytes"
}

func writeFile(path string, b []byte) func(t *testing.T) {
	return func(t *testing.T) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
