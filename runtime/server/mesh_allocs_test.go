package server

import "testing"

// startMeshRawPath is the two-hop mesh path of bench/mesh.sh with
// protocol = "downstream" (HTTP/1.1 over mTLS between the sidecars):
// client -> A (outbound) -> B (inbound) -> a raw upstream. It returns
// one warmed-up request on a keep-alive connection to A.
func startMeshRawPath(tb testing.TB) func() {
	upAddr := startRawUpstream(tb, nginxResponse)
	quiet := "\n[access_log]\ndisabled = true\n"
	m := &twoSidecars{pki: newMeshPKI(tb, "example.org")}
	m.startSidecars(tb, upAddr, quiet, `protocol = "downstream"`+quiet)
	return benchConnWith(tb, m.a.ListenerAddr("outbound"), 100,
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
