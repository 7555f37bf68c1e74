package listen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	sluiceh2 "github.com/sluice-proxy/sluice/runtime/http2"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestRapidResetClosesConnection: a client that floods HEADERS and
// RST_STREAM pairs (CVE-2023-44487) gets GOAWAY ENHANCE_YOUR_CALM after
// about Envoy's threshold of premature resets, and its connection
// closed, over h2c (prior knowledge) and h2 (TLS, ALPN); a well-behaved
// client on another connection is served meanwhile.
func TestRapidResetClosesConnection(t *testing.T) {
	dir := t.TempDir()
	ca, err := mesh.NewCA("example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := mesh.ParseID("spiffe://example.org/ns/default/sa/server")
	if err := ca.IssueFiles(id, filepath.Join(dir, "server"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     config.Listener
		upgrade bool // h2c by an HTTP/1.1 Upgrade
	}{
		{"h2c", config.Listener{Name: "plain", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2c"}}, false},
		{"h2c upgrade", config.Listener{Name: "plain", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2c"}}, true},
		{"h2", config.Listener{Name: "tls", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2"},
			TLS: &config.TLS{Cert: filepath.Join(dir, "server.crt"), Key: filepath.Join(dir, "server.key")}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := stats.NewRegistry()
			h := streamFunc(func(s stream.ServerStream) { replyText(s, "ok") })
			l, err := HTTP(tc.cfg, h, nil, zap.NewNop(), Guards{Stats: reg})
			if err != nil {
				t.Fatal(err)
			}
			l.Serve()
			t.Cleanup(func() { l.Shutdown(context.Background()) })
			addr := l.Addr().String()
			dial := func() net.Conn {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				if tc.cfg.TLS != nil {
					tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
					if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
						t.Fatalf("handshake: %v, ALPN %q", err, tc.ConnectionState().NegotiatedProtocol)
					}
					c = tc
				}
				t.Cleanup(func() { c.Close() })
				return c
			}

			// The attacker: HEADERS then RST_STREAM, as fast as it can.
			c := dial()
			scheme := "http"
			if tc.cfg.TLS != nil {
				scheme = "https"
			}
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", scheme}, {":authority", "x"}, {":path", "/"}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			var r io.Reader = c
			first := uint32(1)
			if tc.upgrade {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n\r\n")
				br := bufio.NewReader(c)
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("upgrade: %v %v", resp, err)
				}
				r, first = br, 3 // stream 1 is the upgrade request
			}
			c.Write([]byte(http2.ClientPreface))
			fr := http2.NewFramer(c, r)
			fr.WriteSettings()
			go func() {
				for id := first; id < 20000; id += 2 {
					if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}) != nil ||
						fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
						return
					}
				}
			}()

			// Meanwhile, a well-behaved client on its own connection.
			good := goodClient(t, tc.cfg.TLS != nil)
			served := make(chan error, 1)
			go func() {
				for i := 0; i < 20; i++ {
					resp, err := good.Get(scheme + "://" + addr + "/")
					if err != nil {
						served <- err
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.ProtoMajor != 2 || string(b) != "ok" {
						served <- io.ErrUnexpectedEOF
						return
					}
				}
				served <- nil
			}()

			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var goAway *http2.GoAwayFrame
			for goAway == nil {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("no GOAWAY before the connection ended: %v", err)
				}
				if g, ok := f.(*http2.GoAwayFrame); ok {
					goAway = g
				}
			}
			if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", goAway.ErrCode)
			}
			// Bounded: the server handled about DefaultPrematureResetStreams/2 pairs
			// (stream ids 1, 3, ...), not the 10,000 sent.
			if max := uint32(2*(sluiceh2.DefaultPrematureResetStreams/2+50) + 1); goAway.LastStreamID > max {
				t.Fatalf("GOAWAY after stream %d; want the flood stopped by stream %d", goAway.LastStreamID, max)
			}
			for {
				if _, err := fr.ReadFrame(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("the connection stays open after GOAWAY")
					}
					break
				}
			}
			if err := <-served; err != nil {
				t.Fatalf("the well-behaved client: %v", err)
			}
			if n := reg.Counter("sluice_downstream_rq_too_many_premature_resets_total", "", "listener", tc.cfg.Name).Value(); n != 1 {
				t.Errorf("sluice_downstream_rq_too_many_premature_resets_total = %d, want 1", n)
			}
		})
	}
}

func goodClient(t *testing.T, useTLS bool) *http.Client {
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	if !useTLS {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}
