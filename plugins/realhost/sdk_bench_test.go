package realhost

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/filtertest"
)

// BenchmarkSDKOverheadOnRealHost runs the same header filter written with
// the Go SDK and against the bare ABI (sdk/testdata/bench) on sluice's
// host, alternating the two in every iteration so that the noise of a
// shared machine hits both alike, and reports sdk/raw: the SDK's relative
// cost per request (stream create, request headers adding a header,
// response headers, log, done and delete).
func BenchmarkSDKOverheadOnRealHost(b *testing.B) {
	fs := map[string]*filtertest.Filter{}
	for _, name := range []string{"raw", "sdk"} {
		fs[name] = filtertest.Load(b, buildGuest(b, "bench/"+name), filtertest.Options{Name: name})
	}
	request := func(f *filtertest.Filter) time.Duration {
		start := time.Now()
		r := f.Do(filtertest.Request{})
		d := time.Since(start)
		if v, _ := r.RequestHeader("x-bench"); v != "1" {
			b.Fatal("the filter did not add x-bench")
		}
		return d
	}
	var raw, sdk time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		raw += request(fs["raw"])
		sdk += request(fs["sdk"])
	}
	b.StopTimer()
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/req")
	b.ReportMetric(float64(sdk.Nanoseconds())/float64(b.N), "sdk-ns/req")
	b.ReportMetric(float64(sdk)/float64(raw), "sdk/raw")
}
