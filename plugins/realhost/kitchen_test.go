package realhost

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/filtertest"
)

// buildGuest builds one of the SDK's test guests (sdk/testdata/NAME).
func buildGuest(t testing.TB, name string) []byte {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the guest")
	}
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildmode=c-shared", "-o", out, "./testdata/"+name)
	cmd.Dir = filepath.Join("..", "..", "sdk")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// The SDK's kitchen-sink guest reports, header by header, what each part
// of the API saw on sluice's host: maps, shared data with CAS, queues,
// metrics, properties (typed helpers, set then get), log level, clock,
// bodies.
func TestSDKOnRealHost(t *testing.T) {
	f := filtertest.Load(t, buildGuest(t, "kitchen"), filtertest.Options{Name: "k", RootID: "kitchen", Config: `{"k":"v"}`})
	port := make([]byte, 8)
	binary.LittleEndian.PutUint64(port, 40000)
	for i := 0; i < 3; i++ {
		r := f.Do(filtertest.Request{
			Headers:         [][2]string{{":method", "POST"}, {"x-in", "1"}, {"x-drop", "x"}},
			Body:            []byte("body"),
			Properties:      map[string][]byte{"source.port": port},
			ResponseHeaders: [][2]string{{":status", "200"}, {"server", "up"}},
			ResponseBody:    []byte("resp"),
		})
		if r.Local != nil || r.Paused {
			t.Fatalf("result %+v", r)
		}
		n := 0
		for _, kv := range r.RequestHeaders {
			if strings.HasPrefix(kv[0], "x-k-") {
				n++
				if kv[1] != "ok" {
					t.Errorf("request %d: %s: %s", i, kv[0], kv[1])
				}
			}
		}
		if n < 14 {
			t.Errorf("only %d checks reported: %q", n, r.RequestHeaders)
		}
		if _, ok := r.RequestHeader("x-drop"); ok {
			t.Error("x-drop not removed")
		}
		if v, _ := r.RequestHeader("x-added"); v != "a" {
			t.Errorf("x-added = %q", v)
		}
		if string(r.RequestBody) != "<body>" {
			t.Errorf("request body = %q", r.RequestBody)
		}
		if v, _ := r.ResponseHeader("x-k-response"); v != "ok" {
			t.Errorf("response header = %q", v)
		}
		if _, ok := r.ResponseHeader("server"); ok {
			t.Error("server header not removed")
		}
		if string(r.ResponseBody) != "^resp!" {
			t.Errorf("response body = %q", r.ResponseBody)
		}
	}
	if v, ok := f.Metric("kitchen_requests_total"); !ok || v != 3 {
		t.Errorf("counter = %d, %v", v, ok)
	}
	if v, ok := f.Metric("kitchen_inflight"); !ok || v != 3 {
		t.Errorf("gauge = %d, %v", v, ok)
	}
	// proxy_on_queue_ready comes asynchronously (as in Envoy, the
	// enqueuing callback cannot be interrupted).
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, _ := f.Metric("kitchen_queue_ready_total")
		if v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("proxy_on_queue_ready never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
