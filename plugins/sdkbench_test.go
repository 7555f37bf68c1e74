package plugins

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkSDKOverhead runs one request (create, request headers adding a
// header, response headers, log, done, delete) through the same header
// filter written with the SDK and against the bare ABI
// (sdk/testdata/bench), on the fake host, alternating the two in every
// iteration so the noise of a shared machine hits both alike. It reports
// ns per request of each and sdk/raw, the SDK's relative cost; the proxy's
// own benchmark puts it in req/s.
func BenchmarkSDKOverhead(b *testing.B) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Skip("no go command to build the guests")
	}
	guests := map[string]*guest{}
	roots := map[string]uint32{}
	for _, name := range []string{"raw", "sdk"} {
		out := filepath.Join(b.TempDir(), name+".wasm")
		cmd := exec.Command(goBin, "build", "-trimpath", "-buildmode=c-shared", "-o", out, "./testdata/bench/"+name)
		cmd.Dir = filepath.Join("..", "sdk")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("building %s: %v\n%s", name, err, msg)
		}
		wasm, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		g := instantiate(b, compileOther(b, wasm))
		root, ok := g.startPlugin("", "")
		if !ok {
			b.Fatalf("%s: configure failed", name)
		}
		guests[name], roots[name] = g, root
	}
	headers := [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "bench"}}
	request := func(name string) time.Duration {
		g := guests[name]
		start := time.Now()
		s := g.newStream(roots[name])
		s.requestHeaders(headers, true)
		s.responseHeaders(headers[:1], true)
		s.end()
		return time.Since(start)
	}
	var raw, sdk time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		raw += request("raw")
		sdk += request("sdk")
	}
	b.StopTimer()
	for name, g := range guests {
		if v, _ := getHeader(g.h.maps[0], "x-bench"); v != "1" {
			b.Fatalf("%s did not add x-bench: %q", name, g.h.maps[0])
		}
	}
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/req")
	b.ReportMetric(float64(sdk.Nanoseconds())/float64(b.N), "sdk-ns/req")
	b.ReportMetric(float64(sdk)/float64(raw), "sdk/raw")
}
