package server

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkProxyHTTP1 is one keep-alive request through sluice to a local
// upstream, client and upstream in process. Its allocs/op is the figure to
// watch: the req/s comparison with nginx is `make bench`.
func BenchmarkProxyHTTP1(b *testing.B) {
	up := startEcho(b, "up", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello from upstream\n"))
	})
	ts := startServer(b, baseConfig(`
[access_log]
disabled = true
[[routes]]
name = "r"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{Timeout: time.Second}).DialContext}}
	url := ts.url("/bench")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
