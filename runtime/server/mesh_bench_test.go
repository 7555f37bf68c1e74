package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkMeshTwoHops is one keep-alive request with a 1 KB answer,
// straight to the app and through client -> A (outbound) -> mTLS h2 -> B
// (inbound) -> app, in one run. The difference of the two ns/op is what
// the two sidecars add (serial requests: latency, not throughput).
func BenchmarkMeshTwoHops(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	quiet := "\n[access_log]\ndisabled = true\n"
	m := startTwoSidecarsApp(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(payload))
	}, quiet, quiet)
	c := &http.Client{Timeout: 10 * time.Second}
	run := func(b *testing.B, url, host string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, "http://"+m.app.addr+"/", "app") })
	b.Run("two-sidecars", func(b *testing.B) { run(b, m.outboundURL("/"), "payments") })
}
