//go:build unix

package wasmfilter

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// BenchmarkBuiltinFilterStream is one stream through the add-header
// built-in (the Rust module `make bench`'s /one route runs, trusted as
// the proxy runs built-ins) as the proxy drives it: NewFilter, request and
// response headers, log, done. The stream is reused, so allocs/op is the
// binding's and the host's alone; wasm-us/op is the time inside the
// guest's callbacks (with the hostcalls they make), host-us/op the rest:
// the cost a filter adds outside its own code.
func BenchmarkBuiltinFilterStream(b *testing.B) {
	hs := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"bench","exp":4102444800}`))
	mac := hmac.New(sha256.New, []byte("bench-secret"))
	mac.Write([]byte(hs))
	hs += "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	for _, c := range []struct {
		name, plugin, config string
		req                  []string
	}{
		{"add-header/request", "add-header", `{"request_headers":{"x-bench-1":"1"}}`, nil},
		{"add-header/both", "add-header", `{"request_headers":{"x-bench-1":"1"},"response_headers":{"x-served-by":"sluice"}}`, nil},
		{"key-auth", "key-auth", `{"keys":[{"key":"k1","consumer":"alice"}]}`, []string{"apikey", "k1"}},
		{"ip-restriction", "ip-restriction", `{"allow":["127.0.0.0/8"]}`, nil},
		{"jwt-HS256", "jwt", `{"claims_to_verify":["exp"],"credentials":[{"key":"bench","secret":"bench-secret"}]}`,
			[]string{"authorization", "Bearer " + hs}},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, run := builtinStream(b, c.plugin, c.config, c.req...)
			benchStreams(b, run, p)
		})
	}
}

// benchStreams runs b.N streams (run) through the plugins and reports
// wasm-us/op, the time inside their callbacks (with the hostcalls they
// make), host-us/op, the rest of the wall time, and cpu-us/op: on a busy
// machine the process's CPU time per stream varies less than the wall
// time.
func benchStreams(b *testing.B, run func(), plugins ...*hostabi.Plugin) {
	calls := func() (s float64) {
		for _, p := range plugins {
			s += p.Stats().CallSeconds
		}
		return s
	}
	before := calls()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for range b.N {
		run()
	}
	b.StopTimer()
	wasm := (calls() - before) * 1e6 / float64(b.N)
	b.ReportMetric(wasm, "wasm-us/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N)-wasm, "host-us/op")
	b.ReportMetric(float64(processCPU()-cpu)/1e3/float64(b.N), "cpu-us/op")
}

// BenchmarkBuiltinFilterStreamParallel is BenchmarkBuiltinFilterStream
// with 64 streams at once, as `make bench`'s wrk -c64 drives the proxy,
// for the plugin's default pool (GOMAXPROCS instances) and a larger one:
// streams share an instance, and one that finds it in a call waits.
func BenchmarkBuiltinFilterStreamParallel(b *testing.B) {
	for _, instances := range []int{0, 16} {
		b.Run(fmt.Sprintf("instances=%d", instances), func(b *testing.B) {
			p, f := builtinFactory(b, "add-header", `{"request_headers":{"x-bench-1":"1"}}`, instances)
			b.SetParallelism(32) // 64 goroutines on 2 Ps
			b.ReportAllocs()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				s := newTestStream("GET", "http://example.com/")
				var resp stream.HeaderMap
				for pb.Next() {
					s.req.Del("x-bench-1")
					s.resp = nil
					flt, err := f.NewFilter(context.Background(), s)
					if err != nil {
						b.Error(err)
						return
					}
					flt.OnRequestHeaders(s, true)
					// Other streams run meanwhile, as while this one
					// waits for its upstream.
					runtime.Gosched()
					resp.Reset()
					resp.Add(stream.Status, "200")
					s.resp = &resp
					flt.OnResponseHeaders(s, true)
					flt.OnLog(s)
					flt.OnDone(s)
				}
			})
			b.ReportMetric(float64(processCPU()-cpu)/1e3/float64(b.N), "cpu-us/op")
			b.ReportMetric(float64(p.Stats().Instances), "instances")
		})
	}
}

// builtinFilterAllocs is what a stream through a Wasm filter allocates in
// the binding and the host: the filter itself, which holds the stream's
// context and its view of the stream.
const builtinFilterAllocs = 1

// TestBuiltinFilterStreamAllocs pins BenchmarkBuiltinFilterStream's
// allocations per stream, request and response callbacks both entering
// the guest, so that a change that adds one shows here.
func TestBuiltinFilterStreamAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	_, run := builtinStream(t, "add-header", `{"request_headers":{"x-bench-1":"1"},"response_headers":{"x-served-by":"sluice"}}`)
	if n := testing.AllocsPerRun(500, run); n > builtinFilterAllocs {
		t.Errorf("%v allocations per stream, want at most %d", n, builtinFilterAllocs)
	}
}

// builtinFactory loads the built-in plugin (trusted, as the proxy runs
// built-ins, on compiled code) with config and at most instances
// instances (0: the default).
func builtinFactory(tb testing.TB, plugin, config string, instances int) (*hostabi.Plugin, *WasmFactory) {
	p, err := engine(tb).Load(context.Background(), hostabi.PluginConfig{Name: tb.Name(), RootID: plugin,
		Wasm: plugins.RustModule(plugin), PluginConfig: []byte(config), Trusted: true, Instances: instances})
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.WaitCompiled(context.Background()); err != nil {
		tb.Fatal(err)
	}
	f := NewWasmFactory(p, zap.NewNop())
	f.DrainTimeout = 5 * time.Second
	tb.Cleanup(f.Close)
	return p, f
}

// builtinStream loads the built-in plugin with config and returns one
// stream through it (with the request fields kv), warmed up; the stream
// is reused, its request header map refilled for each run as a codec
// fills it (fields pointing into the request's buffer), so what the
// filter adds lands in an empty arena, as in the proxy.
func builtinStream(tb testing.TB, plugin, config string, kv ...string) (*hostabi.Plugin, func()) {
	p, f := builtinFactory(tb, plugin, config, 0)
	s := newTestStream("GET", "http://example.com/")
	for i := 0; i+1 < len(kv); i += 2 {
		s.req.Add(kv[i], kv[i+1])
	}
	refill := requestRefill(s)
	var resp stream.HeaderMap
	ctx := context.Background()
	run := func() {
		refill()
		s.resp = nil
		clear(s.info.FilterState)
		flt, err := f.NewFilter(ctx, s)
		if err != nil {
			tb.Fatal(err)
		}
		if st := flt.OnRequestHeaders(s, true); st != filter.Continue {
			tb.Fatalf("%s: request headers: %v, local replies %+v", plugin, st, s.local)
		}
		resp.Reset()
		resp.Add(stream.Status, "200")
		s.resp = &resp
		if st := flt.OnResponseHeaders(s, true); st != filter.Continue {
			tb.Fatal(st)
		}
		flt.OnLog(s)
		flt.OnDone(s)
	}
	for range 1000 {
		run()
	}
	if plugin == "add-header" {
		if _, ok := s.req.Get("x-bench-1"); !ok {
			tb.Fatal("the filter added no request header")
		}
	}
	return p, run
}

// requestRefill returns what refills s's request header map with the
// fields it has now, as a codec fills it for each request: fields
// pointing into the request's buffer, an empty arena.
func requestRefill(s *testStream) func() {
	fields := make([][2][]byte, s.req.Len())
	for i := range fields {
		name, value := s.req.At(i)
		fields[i] = [2][]byte{bytes.Clone(name), bytes.Clone(value)}
	}
	return func() {
		s.req.Reset()
		for _, kv := range fields {
			s.req.AddRaw(kv[0], kv[1])
		}
	}
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
