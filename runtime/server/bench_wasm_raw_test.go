//go:build unix

package server

import (
	"bufio"
	"net"
	"strings"
	"syscall"
	"testing"
)

// BenchmarkProxyHTTP1RawWasm is BenchmarkProxyHTTP1Raw with built-in
// header-adding Wasm filters on the route (none, one, five, as `make
// bench`'s plain, /one and /five rows), so that allocs/op and ns/op show
// what a filter adds to a request: the guest's own time plus the host's
// (stream context, callbacks, binding).
//
// Run: go test -run '^$' -bench ProxyHTTP1RawWasm -benchmem ./runtime/server
func BenchmarkProxyHTTP1RawWasm(b *testing.B) {
	for _, n := range []int{0, 1, 5} {
		b.Run(strings.Repeat("hdr", min(n, 1))+string(rune('0'+n)), func(b *testing.B) {
			roundTrip := startRawWasmProxyPath(b, n)
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

// startRawWasmProxyPath is startRawProxyPath with n add-header built-ins
// on the route.
func startRawWasmProxyPath(tb testing.TB, n int) func() {
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
	c, err := net.Dial("tcp", ts.ListenerAddr("public"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: bench\r\n\r\n")
	br := bufio.NewReaderSize(c, 16<<10)
	body := make([]byte, 4096)
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		n, err := readRawResponse(br, body)
		if err != nil {
			tb.Fatal(err)
		}
		if n != 20 {
			tb.Fatalf("body of %d bytes, want 20", n)
		}
	}
	for range 2000 { // warm the pools, the upstream connection and the compiled code
		roundTrip()
	}
	return roundTrip
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
