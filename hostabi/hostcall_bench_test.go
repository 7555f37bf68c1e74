package hostabi

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	// Test only: the benchmark measures the header map the proxy serves
	// hostcalls from. hostabi itself imports nothing from runtime/.
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// hostcallsPerCallback is how many hostcalls the Rust guest makes per
// proxy_on_request_headers: enough that the callback's own cost is a
// small share of each.
const hostcallsPerCallback = 100

// mapStream is a StreamHost whose request headers are a stream.HeaderMap
// refilled with a typical request before each callback.
type mapStream struct {
	testStream
	req stream.HeaderMap
}

var typicalRequest = [][2][]byte{
	{[]byte(":method"), []byte("GET")},
	{[]byte(":path"), []byte("/api/v1/items?page=2")},
	{[]byte(":authority"), []byte("example.com")},
	{[]byte(":scheme"), []byte("https")},
	{[]byte("user-agent"), []byte("curl/8.5.0")},
	{[]byte("accept"), []byte("*/*")},
	{[]byte("accept-encoding"), []byte("gzip, br")},
	{[]byte("x-forwarded-for"), []byte("192.0.2.10")},
	{[]byte("x-request-id"), []byte("0f8fad5b-d9cb-469f-a165-70867728950e")},
	{[]byte("authorization"), []byte("Bearer abc.def.ghi")},
}

func (s *mapStream) refill() {
	s.req.Reset()
	for _, f := range typicalRequest {
		s.req.AddRaw(f[0], f[1])
	}
}

func (s *mapStream) Headers(t MapType) HeaderMap {
	if t == RequestHeaders {
		return &s.req
	}
	return nil
}

func rustGuest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rust", name, name+".wasm"))
	if err != nil {
		t.Fatalf("Rust test guest missing (make -C hostabi/testdata): %v", err)
	}
	return b
}

// hostcallStream loads the Rust guest making hostcallsPerCallback
// hostcalls of kind op per request-headers callback.
func hostcallStream(t testing.TB, op string) (*mapStream, *HTTPStream) {
	t.Helper()
	ctx := context.Background()
	// A generous deadline: on a loaded machine a callback of 100 map
	// decodings was seen to take 45 ms of wall time.
	p, err := testEngine.Load(ctx, PluginConfig{Name: t.Name(), Wasm: rustGuest(t, "hostcalls"),
		PluginConfig: []byte(op + " " + strconv.Itoa(hostcallsPerCallback)), CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(ctx) })
	s := &mapStream{}
	hs, err := p.NewHTTPStream(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hs.OnDone() })
	return s, hs
}

// add5 and replace5: five headers per call (sluice_add_headers,
// sluice_replace_headers), so ns/hostcall is per header edited.
var hostcallOps = []string{"none", "get", "get-bytes", "add", "replace", "remove", "pairs", "pairs-view", "pairs-raw", "add5", "replace5"}

// BenchmarkHeaderHostcall is one header hostcall from a Rust guest (the
// repository's crate) to a stream.HeaderMap and back, guest side
// included: ns/hostcall is a callback's time over the hostcalls it makes
// ("none": the callback alone, over the same count). The map is refilled
// with a 10-field request before each callback.
func BenchmarkHeaderHostcall(b *testing.B) {
	for _, op := range hostcallOps {
		b.Run(op, func(b *testing.B) {
			s, hs := hostcallStream(b, op)
			b.ReportAllocs()
			for b.Loop() {
				s.refill()
				if a, err := hs.OnRequestHeaders(false); a != Continue || err != nil {
					b.Fatal(a, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*hostcallsPerCallback), "ns/hostcall")
		})
	}
}

// TestHeaderHostcallsDoNotAllocate: a header hostcall from the Rust
// guest to a stream.HeaderMap allocates nothing on the host once the
// map has grown.
func TestHeaderHostcallsDoNotAllocate(t *testing.T) {
	for _, op := range hostcallOps {
		t.Run(op, func(t *testing.T) {
			s, hs := hostcallStream(t, op)
			run := func() {
				s.refill()
				if a, err := hs.OnRequestHeaders(false); a != Continue || err != nil {
					t.Fatal(a, err)
				}
			}
			run()
			if n := testing.AllocsPerRun(20, run); n != 0 {
				t.Errorf("%s: %v allocations per callback of %d hostcalls, want 0", op, n, hostcallsPerCallback)
			}
		})
	}
}
