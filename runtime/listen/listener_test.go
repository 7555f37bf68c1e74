package listen

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestTLSFactsPerConnection: an mTLS listener works out a connection's TLS
// facts (peer ID, certificate hash) for its first request and hands the
// same ones to every later request on it, over HTTP/1.1 and HTTP/2; a new
// connection gets its own.
func TestTLSFactsPerConnection(t *testing.T) {
	dir := t.TempDir()
	ca, err := mesh.NewCA("example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"server", "client"} {
		id, _ := mesh.ParseID("spiffe://example.org/ns/default/sa/" + name)
		if err := ca.IssueFiles(id, filepath.Join(dir, name), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	require := true
	cfg := config.Listener{
		Name: "in", Address: "127.0.0.1:0", Direction: "inbound", Protocols: []string{"http1", "h2"},
		TLS: &config.TLS{Cert: filepath.Join(dir, "server.crt"), Key: filepath.Join(dir, "server.key"),
			ClientCA: filepath.Join(dir, mesh.CACertFile), RequireClientCert: &require},
	}
	h := streamFunc(func(s stream.ServerStream) {
		info := mesh.ConnTLSInfo(s.Context(), s.Connection().TLS)
		replyText(s, fmt.Sprintf("%p %s", info, info.PeerURISANs[0]))
	})
	l := startListener(t, cfg, h, Guards{})

	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h2 := range []bool{false, true} {
		client := func() *http.Client {
			// The server's certificate names a workload, not a host.
			tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{pair}, InsecureSkipVerify: true},
				ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			t.Cleanup(tr.CloseIdleConnections)
			return &http.Client{Transport: tr, Timeout: 5 * time.Second}
		}
		get := func(c *http.Client) string {
			resp, err := c.Get("https://" + l.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if (resp.ProtoMajor == 2) != h2 {
				t.Fatalf("served over %s", resp.Proto)
			}
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		c1, c2 := client(), client()
		first := get(c1)
		if again := get(c1); again != first {
			t.Errorf("h2=%v: second request on the connection got %q, the first %q", h2, again, first)
		}
		if other := get(c2); other == first {
			t.Errorf("h2=%v: another connection shared the first one's facts %q", h2, other)
		}
	}
}
