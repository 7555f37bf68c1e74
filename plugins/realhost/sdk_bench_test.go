package realhost

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/hostabi"
)

// BenchmarkSDKOverheadOnRealHost runs the same header filter written with
// the Go SDK and against the bare ABI (sdk/testdata/bench) on sluice's
// host, alternating the two in every iteration so that the noise of a
// shared machine hits both alike, and reports sdk/raw: the SDK's relative
// cost per request (stream create, request headers adding a header,
// response headers, log, done and delete).
func BenchmarkSDKOverheadOnRealHost(b *testing.B) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Skip("no go command to build the guests")
	}
	ctx := context.Background()
	e, err := hostabi.NewEngine(ctx, hostabi.EngineConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	ps := map[string]*hostabi.Plugin{}
	for _, name := range []string{"raw", "sdk"} {
		out := filepath.Join(b.TempDir(), name+".wasm")
		cmd := exec.Command(goBin, "build", "-trimpath", "-buildmode=c-shared", "-o", out, "./testdata/bench/"+name)
		cmd.Dir = filepath.Join("..", "..", "sdk")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("building %s: %v\n%s", name, err, msg)
		}
		wasm, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		p, err := e.Load(ctx, hostabi.PluginConfig{Name: name, Wasm: wasm, Trusted: true, Instances: 1})
		if err != nil {
			b.Fatalf("loading %s: %v", name, err)
		}
		defer p.Close(ctx)
		ps[name] = p
	}
	request := func(p *hostabi.Plugin) time.Duration {
		start := time.Now()
		ts := newTestStream([][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "bench"}}, "10.0.0.1:1")
		s, err := p.NewHTTPStream(ctx, ts)
		if err != nil {
			b.Fatal(err)
		}
		s.OnRequestHeaders(true)
		ts.maps[hostabi.ResponseHeaders] = &testMap{pairs: [][2]string{{":status", "200"}}}
		s.OnResponseHeaders(true)
		s.OnLog()
		s.OnDone()
		if v, _ := ts.maps[hostabi.RequestHeaders].Get("x-bench"); v != "1" {
			b.Fatalf("%s did not add x-bench", p.Name())
		}
		return time.Since(start)
	}
	var raw, sdk time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		raw += request(ps["raw"])
		sdk += request(ps["sdk"])
	}
	b.StopTimer()
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/req")
	b.ReportMetric(float64(sdk.Nanoseconds())/float64(b.N), "sdk-ns/req")
	b.ReportMetric(float64(sdk)/float64(raw), "sdk/raw")
}
