package upstream

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// BenchmarkRoundTrip measures one try (Send) through a cluster against a local
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
				req := &Request{Headers: headers("GET", "/", "x")}
				for pb.Next() {
					if err := sendOnce(context.Background(), c, req, buf); err != nil {
						b.Error(err)
						return
					}
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

// startCannedServer answers every request with a fixed response, reading
// just up to the blank line: a server that costs almost nothing, so the
// client side dominates the profile.
func startCannedServer(b testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world")
	var wg sync.WaitGroup
	b.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				have := 0
				for {
					n, err := c.Read(buf[have:])
					if err != nil {
						return
					}
					have += n
					for {
						i := bytes.Index(buf[:have], []byte("\r\n\r\n"))
						if i < 0 {
							break
						}
						if _, err := c.Write(resp); err != nil {
							return
						}
						copy(buf, buf[i+4:have])
						have -= i + 4
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// BenchmarkClientHTTP1 compares the cluster's HTTP/1.1 path (Send) with
// a bare net/http Transport against the same trivial server.
func BenchmarkClientHTTP1(b *testing.B) {
	addr := startCannedServer(b)
	run := func(b *testing.B, rt func(*http.Request) (*http.Response, error)) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 512)
			for pb.Next() {
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
				req.Header.Set("User-Agent", "bench")
				resp, err := rt(req)
				if err != nil {
					b.Error(err)
					cancel()
					return
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
				resp.Body.Close()
				cancel()
			}
		})
	}
	cluster := func(b *testing.B) *Cluster {
		m, err := NewManager([]config.Cluster{{Name: "c", Endpoints: []string{addr}}}, stats.NewRegistry(), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(m.Close)
		return m.Cluster("c")
	}
	b.Run("cluster_send", func(b *testing.B) {
		// The stream-model path the router takes: no *http.Request, a
		// header map reused per goroutine, a cancelable context.
		c := cluster(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := &Request{Headers: headers("GET", "/", addr, "user-agent", "bench")}
			buf := make([]byte, 512)
			for pb.Next() {
				if err := sendOnce(ctx, c, req, buf); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("net_http", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
		defer tr.CloseIdleConnections()
		run(b, tr.RoundTrip)
	})
}

// BenchmarkH1IdlePeek is what handing out an idle http1 connection adds:
// one non-blocking recv(MSG_PEEK) on its socket.
func BenchmarkH1IdlePeek(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var p idlePeek
	p.init(conn)
	b.ReportAllocs()
	for b.Loop() {
		if !p.quiet() {
			b.Fatal("idle connection not quiet")
		}
	}
}
