package upstream

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// BenchmarkRoundTrip measures one try through a cluster against a local
// upstream, per protocol; compare with BenchmarkBareTransport for the cost
// of the cluster layer itself.
func BenchmarkRoundTrip(b *testing.B) {
	for _, protocol := range []string{"http1", "h2c"} {
		b.Run(protocol, func(b *testing.B) {
			srv := startBenchServer(b, protocol == "h2c")
			m, err := NewManager([]config.Cluster{{Name: "c", Protocol: protocol, Endpoints: []string{srv}}}, stats.NewRegistry(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			c := m.Cluster("c")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 4096)
				for pb.Next() {
					req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://x/", nil)
					resp, err := c.RoundTrip(req, Pick{})
					if err != nil {
						b.Error(err)
						return
					}
					for {
						if _, err := resp.Body.Read(buf); err != nil {
							break
						}
					}
					resp.Body.Close()
				}
			})
		})
	}
}

func BenchmarkBareTransport(b *testing.B) {
	srv := startBenchServer(b, false)
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
	defer tr.CloseIdleConnections()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4096)
		for pb.Next() {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+srv+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.Close()
		}
	})
}

func startBenchServer(b *testing.B, withH2C bool) string {
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello world")
	})
	bk := startHTTP(b, "bench", h, withH2C)
	return bk.addr
}
