package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/sluice-proxy/sluice/plugins"
)

// withCustomSection returns module with a custom section appended: the
// same code under a new sha256, which is a new version to the hot loader.
func withCustomSection(module []byte, payload string) []byte {
	name := "sluice-test"
	body := append([]byte{byte(len(name))}, name...)
	body = append(body, payload...)
	out := append([]byte(nil), module...)
	out = append(out, 0) // custom section id
	n := len(body)
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, b|0x80)
			continue
		}
		out = append(out, b)
		break
	}
	return append(out, body...)
}

func pluginSHA(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/plugins")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list) != 1 {
		t.Fatalf("/plugins: %v %v", list, err)
	}
	return list[0].SHA256
}

// startHotPlugin runs sluice with one route through plugin "hdr": the
// built-in module's add-header (x-hot: 1) loaded from a file, whose path
// it returns so a test can change it on disk. extra starts the config.
func startHotPlugin(t *testing.T, extra string) (*testServer, string) {
	t.Helper()
	up := startEcho(t, "up", nil)
	wasmPath := filepath.Join(t.TempDir(), "filter.wasm")
	if err := os.WriteFile(wasmPath, plugins.RustModule("add-header"), 0o644); err != nil {
		t.Fatal(err)
	}
	return startServer(t, baseConfig(extra+`
[[plugins]]
name = "hdr"
wasm = "`+wasmPath+`"
root_id = "add-header"
config = { request_headers = { "x-hot" = "1" } }
# Compiling the new version competes for the CPU (and -race slows the
# host): a generous deadline keeps a slow callback from counting as a hang.
vm = { call_timeout = "5s" }
[[routes]]
name = "r"
plugins = ["hdr"]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`)), wasmPath
}

// TestPluginHotSwapUnderLoad changes a plugin's .wasm file while requests
// run: the new version takes over, no request fails, and a broken file is
// refused with the old version still serving.
func TestPluginHotSwapUnderLoad(t *testing.T) {
	ts, wasmPath := startHotPlugin(t, "")
	admin := ts.AdminAddr()
	first := pluginSHA(t, admin)

	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < 500; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(ts.url("/"))
				if err != nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				var e echoReply
				json.NewDecoder(resp.Body).Decode(&e)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || len(e.Header["X-Hot"]) != 1 {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("status %d, x-hot %v, %s", resp.StatusCode, e.Header["X-Hot"], resp.Header.Get("X-Request-Id")))
					continue
				}
				ok.Add(1)
			}
		}()
	}

	// Version 2 through POST /plugins/reload.
	os.WriteFile(wasmPath, withCustomSection(plugins.RustModule("add-header"), "v2"), 0o644)
	resp, err := http.Post("http://"+admin+"/plugins/reload", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /plugins/reload: %v %v", err, resp)
	}
	resp.Body.Close()
	second := pluginSHA(t, admin)
	if second == first {
		t.Fatal("the reload did not load the changed module")
	}
	// A broken module is refused and version 2 keeps serving.
	os.WriteFile(wasmPath, []byte("\x00asm garbage"), 0o644)
	resp, err = http.Post("http://"+admin+"/plugins/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("broken module: reload answered %d, want 400", resp.StatusCode)
	}
	if pluginSHA(t, admin) != second {
		t.Fatal("a refused module replaced the serving one")
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		for _, e := range ts.logs.FilterLevelExact(zapcore.ErrorLevel).All() {
			t.Logf("log: %s %v", e.Message, e.ContextMap())
		}
		t.Fatalf("%d failed (first: %v), %d ok across the swaps", failed.Load(), firstFailure.Load(), ok.Load())
	}
}
