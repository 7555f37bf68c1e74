package hostabi

import (
	"context"
	"testing"
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
