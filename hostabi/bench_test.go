package hostabi

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/sluice-proxy/sluice/plugins"
)

// BenchmarkRequestHeaders is one host round trip: proxy_on_request_headers
// into the guest, which returns Continue at once.
func BenchmarkRequestHeaders(b *testing.B) {
	p := load(b, "rawabi", PluginConfig{PluginConfig: []byte("quiet:\nrequest_headers: ret 0")})
	hs, err := p.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		b.Fatal(err)
	}
	defer hs.OnDone()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hs.OnRequestHeaders(false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddHeader is a callback that makes one hostcall, as a filter
// that adds a header does.
func BenchmarkAddHeader(b *testing.B) {
	p := load(b, "rawabi", PluginConfig{PluginConfig: []byte("quiet:\nrequest_headers: hdr_replace 0 x-wasm 1")})
	s := newTestStream()
	hs, err := p.NewHTTPStream(context.Background(), s)
	if err != nil {
		b.Fatal(err)
	}
	defer hs.OnDone()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hs.OnRequestHeaders(false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStream is a whole stream's life: context create, headers, log,
// done and delete.
func BenchmarkStream(b *testing.B) {
	p := load(b, "rawabi", PluginConfig{PluginConfig: []byte("quiet:\nrequest_headers: ret 0")})
	b.ReportAllocs()
	for b.Loop() {
		if err := oneRequest(p, newTestStream()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestHeadersMinimal is the same round trip into a guest with
// no language runtime: the host's own cost per callback.
func BenchmarkRequestHeadersMinimal(b *testing.B) {
	p, err := testEngine.Load(context.Background(), PluginConfig{Name: b.Name(), Wasm: minimalGuest()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	hs, err := p.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		b.Fatal(err)
	}
	defer hs.OnDone()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hs.OnRequestHeaders(false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestHeadersTrusted: the same on the runtime without
// termination checks (PluginConfig.Trusted).
func BenchmarkRequestHeadersTrusted(b *testing.B) {
	p := load(b, "rawabi", PluginConfig{Trusted: true, PluginConfig: []byte("quiet:\nrequest_headers: ret 0")})
	hs, err := p.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		b.Fatal(err)
	}
	defer hs.OnDone()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hs.OnRequestHeaders(false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadWarmCache is a restart with a warm compilation cache: a new
// engine on the same cache directory loads and starts the 2 MB rawabi
// guest (compile from cache, instantiate, _initialize, vm_start, configure).
func BenchmarkLoadWarmCache(b *testing.B) {
	dir := b.TempDir()
	ctx := context.Background()
	load := func() {
		e, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		p, err := e.Load(ctx, PluginConfig{Name: "warm", Wasm: testGuests["rawabi"]})
		if err != nil {
			b.Fatal(err)
		}
		p.Close(ctx)
		e.Close(ctx)
	}
	load() // warm the cache
	b.ResetTimer()
	for range b.N {
		load()
	}
}

// BenchmarkNewInstance is one more instance of a loaded plugin (the
// built-in add-header module on the Rust crate), created and closed: its
// B/op is the Go heap an instance takes while it lives, besides its linear
// memory. wazero gives every function the host looks up its own call
// engine with a stack, so an instance that looked up every callback at
// creation paid for the ones its streams never call.
func BenchmarkNewInstance(b *testing.B) {
	testGuests["add-header"] = plugins.RustModule("add-header")
	p := load(b, "add-header", PluginConfig{RootID: "add-header", Trusted: true,
		PluginConfig: []byte(`{"request_headers":{"x-a":"1"}}`)})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p.vm.createMu.Lock()
		in, err := p.vm.newInstance(ctx)
		p.vm.createMu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		in.close(errors.New("benchmark"))
	}
	// What a live instance keeps: the heap of ten more, after collection.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var insts []*instance
	for range 10 {
		p.vm.createMu.Lock()
		in, err := p.vm.newInstance(ctx)
		p.vm.createMu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		insts = append(insts, in)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/10, "live-B/instance")
	for _, in := range insts {
		in.close(errors.New("benchmark"))
	}
}
