package wasmfilter

import (
	"context"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/filter"
)

// BenchmarkWasmFilterStream is one stream through a header-adding Wasm
// filter as the proxy drives it: NewFilter, request and response headers,
// log, done.
func BenchmarkWasmFilterStream(b *testing.B) {
	for _, trusted := range []bool{false, true} {
		name := "sandboxed"
		if trusted {
			name = "trusted"
		}
		b.Run(name, func(b *testing.B) {
			f, _ := newFactory(b, hostabi.PluginConfig{Trusted: trusted,
				PluginConfig: []byte("quiet:\nrequest_headers: hdr_replace 0 x-wasm 1")}, "rawabi")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				s := newTestStream("GET", "http://example.com/")
				flt, err := f.NewFilter(ctx, s)
				if err != nil {
					b.Fatal(err)
				}
				if st := flt.OnRequestHeaders(s, true); st != filter.Continue {
					b.Fatal(st)
				}
				s.respond("200")
				flt.OnResponseHeaders(s, true)
				flt.OnLog(s)
				flt.OnDone(s)
			}
		})
	}
}
