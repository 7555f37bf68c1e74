package server

import (
	"fmt"
	"testing"
	"time"
)

// startMeshRawPath is the two-hop mesh path of bench/mesh.sh with
// protocol = "downstream" (HTTP/1.1 over mTLS between the sidecars):
// client -> A (outbound) -> B (inbound) -> a raw upstream. It returns
// one warmed-up request on a keep-alive connection to A.
func startMeshRawPath(tb testing.TB) func() {
	pki := newMeshPKI(tb, "example.org")
	upAddr := startRawUpstream(tb, "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 05:54:20 GMT\r\n"+
		"Content-Type: text/plain\r\nContent-Length: 20\r\nConnection: keep-alive\r\n\r\nhello from upstream\n")
	bCert, bKey := pki.issue("payments", idPayments, time.Time{}, time.Hour)
	aCert, aKey := pki.issue("orders", idOrders, time.Time{}, time.Hour)
	quiet := "\n[access_log]\ndisabled = true\n"
	b := startServer(tb, sidecarConfig(bCert, bKey, pki.bundle(), upAddr, "strict", quiet))
	a := startServer(tb, sidecarConfig(aCert, aKey, pki.bundle(), "127.0.0.1:1", "strict", quiet+fmt.Sprintf(`
[[services]]
name = "payments"
endpoints = [%q]
identity = %q
protocol = "downstream"
`, b.ListenerAddr("inbound"), idPayments)))
	return benchConnWith(tb, a.ListenerAddr("outbound"), 100,
		"GET /bench HTTP/1.1\r\nHost: payments\r\nUser-Agent: meshload\r\n\r\n")
}

// meshDownstreamAllocs bounds the allocations of one request through both
// sidecars: crypto/tls's, one a record read (its atLeastReader): A's
// answer, A's look past it for unasked bytes, B's request. The native
// filters let the streams be reused (runtime/mesh: passFilter), as on a
// route without filters; before, a request allocated 31 times.
const meshDownstreamAllocs = 3

func TestMeshDownstreamAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	roundTrip := startMeshRawPath(t)
	if n := testing.AllocsPerRun(200, roundTrip); n > meshDownstreamAllocs {
		t.Errorf("%v allocations per request through both sidecars, want at most %d", n, meshDownstreamAllocs)
	}
}

func BenchmarkMeshDownstreamPath(b *testing.B) {
	roundTrip := startMeshRawPath(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
}
