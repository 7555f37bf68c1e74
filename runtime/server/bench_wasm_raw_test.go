//go:build unix

package server

import (
	"strings"
	"syscall"
	"testing"
)

// BenchmarkProxyHTTP1RawWasm is BenchmarkProxyHTTP1Raw with built-in
// header-adding Wasm filters on the route (none, one, five, as `make
// bench`'s plain, /one and /five rows), so that allocs/op and cpu-us/op
// show what a filter adds to a request: the guest's own time plus the
// host's (stream context, callbacks, binding) and the proxy's (the chain,
// the body through the filters).
//
// Run: go test -run '^$' -bench ProxyHTTP1RawWasm -benchmem ./runtime/server
func BenchmarkProxyHTTP1RawWasm(b *testing.B) {
	for _, n := range []int{0, 1, 5} {
		b.Run(routeName(n), func(b *testing.B) {
			roundTrip := benchConn(b, startRawWasmProxy(b, n), 2000)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for range b.N {
				roundTrip()
			}
			// Wall time here is mostly loopback latency on a shared
			// machine; the process's CPU time (proxy, client and upstream
			// together, the latter two the same in every case) is the
			// figure to compare.
			b.ReportMetric(float64(processCPU()-cpu)/1e3/float64(b.N), "cpu-us/op")
		})
	}
}

// BenchmarkProxyHTTP1RawWasmParallel is BenchmarkProxyHTTP1RawWasm with
// 32 keep-alive connections at once, as `make bench`'s wrk keeps many:
// the streams of one plugin then share its instances.
func BenchmarkProxyHTTP1RawWasmParallel(b *testing.B) {
	for _, n := range []int{0, 1} {
		b.Run(routeName(n), func(b *testing.B) {
			addr := startRawWasmProxy(b, n)
			conns := make(chan func(), 32)
			for range cap(conns) {
				conns <- benchConn(b, addr, 100)
			}
			b.SetParallelism(16) // 32 goroutines on 2 Ps
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				roundTrip := <-conns
				for pb.Next() {
					roundTrip()
				}
			})
			b.ReportMetric(float64(processCPU()-cpu)/1e3/float64(b.N), "cpu-us/op")
		})
	}
}

func routeName(n int) string { return strings.Repeat("hdr", min(n, 1)) + string(rune('0'+n)) }

// startRawWasmProxy starts a raw upstream and sluice before it with n
// add-header built-ins on the route, and returns sluice's address.
func startRawWasmProxy(tb testing.TB, n int) string {
	upAddr := startRawUpstream(tb, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nhello from upstream\n")
	var plugins, names []string
	for i := 1; i <= n; i++ {
		name := "hdr" + string(rune('0'+i))
		plugins = append(plugins, `[[plugins]]
name = "`+name+`"
wasm = "builtin:add-header"
config = { request_headers = { "x-bench-`+string(rune('0'+i))+`" = "1" } }
`)
		names = append(names, `"`+name+`"`)
	}
	ts := startServer(tb, baseConfig(`
[access_log]
disabled = true
`+strings.Join(plugins, "")+`
[[routes]]
name = "r"
plugins = [`+strings.Join(names, ", ")+`]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+upAddr+`"]
`))
	ts.waitPluginsCompiled(tb)
	return ts.ListenerAddr("public")
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// proxyHTTP1RawWasmAllocs is the allocations per request
// BenchmarkProxyHTTP1RawWasm's routes are held to, by number of
// add-header built-ins: none. The Wasm binding's stream context
// (hostabi's stream and its host view, one object) is pooled once its
// OnDone returned with nothing queued for it; the chain lives in the
// pooled active stream, the built-in skips body callbacks so bodies pass
// untouched, and the request id reaches the filter as bytes.
var proxyHTTP1RawWasmAllocs = map[int]float64{1: 0, 5: 0}

// TestProxyHTTP1RawWasmAllocs pins BenchmarkProxyHTTP1RawWasm's
// allocations per request (lower the figures when a change removes one).
func TestProxyHTTP1RawWasmAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, n := range []int{1, 5} {
		t.Run(routeName(n), func(t *testing.T) {
			roundTrip := benchConn(t, startRawWasmProxy(t, n), 200)
			if got := testing.AllocsPerRun(200, roundTrip); got > proxyHTTP1RawWasmAllocs[n] {
				t.Errorf("%v allocations per request through %d filters, want at most %v", got, n, proxyHTTP1RawWasmAllocs[n])
			}
		})
	}
}
