//go:build unix

package wasmfilter

import (
	"context"
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
	for _, c := range []struct{ name, config string }{
		{"request", `{"request_headers":{"x-bench-1":"1"}}`},
		{"both", `{"request_headers":{"x-bench-1":"1"},"response_headers":{"x-served-by":"sluice"}}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, run := builtinStream(b, c.config)
			before := p.Stats().CallSeconds
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for range b.N {
				run()
			}
			b.StopTimer()
			wasm := (p.Stats().CallSeconds - before) * 1e6 / float64(b.N)
			b.ReportMetric(wasm, "wasm-us/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N)-wasm, "host-us/op")
			// On a busy machine the process's CPU time per stream varies
			// less than the wall time.
			b.ReportMetric(float64(processCPU()-cpu)/1e3/float64(b.N), "cpu-us/op")
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
	_, run := builtinStream(t, `{"request_headers":{"x-bench-1":"1"},"response_headers":{"x-served-by":"sluice"}}`)
	if n := testing.AllocsPerRun(500, run); n > builtinFilterAllocs {
		t.Errorf("%v allocations per stream, want at most %d", n, builtinFilterAllocs)
	}
}

// builtinStream loads the add-header built-in with config and returns one
// stream through it, warmed up; the stream's maps are reused.
func builtinStream(tb testing.TB, config string) (*hostabi.Plugin, func()) {
	e := engine(tb)
	p, err := e.Load(context.Background(), hostabi.PluginConfig{Name: tb.Name(), RootID: "add-header",
		Wasm: plugins.RustModule("add-header"), PluginConfig: []byte(config), Trusted: true})
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.WaitCompiled(context.Background()); err != nil {
		tb.Fatal(err)
	}
	f := NewWasmFactory(p, zap.NewNop())
	f.DrainTimeout = 5 * time.Second
	tb.Cleanup(f.Close)
	s := newTestStream("GET", "http://example.com/")
	var resp stream.HeaderMap
	ctx := context.Background()
	run := func() {
		s.req.Del("x-bench-1")
		s.resp = nil
		flt, err := f.NewFilter(ctx, s)
		if err != nil {
			tb.Fatal(err)
		}
		if st := flt.OnRequestHeaders(s, true); st != filter.Continue {
			tb.Fatal(st)
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
	if _, ok := s.req.Get("x-bench-1"); !ok {
		tb.Fatal("the filter added no request header")
	}
	return p, run
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
