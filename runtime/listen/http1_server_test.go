package listen

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestPlainListenerProtocols: on a port with http1 and h2c, HTTP/1.1
// requests go to runtime/http1 and prior-knowledge h2c to runtime/http2; the
// upgrade form answers 101 and serves the request as HTTP/2. Shutdown lets
// a request in flight on each protocol finish and closes an idle
// connection.
func TestPlainListenerProtocols(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 2)
	h := streamFunc(func(s stream.ServerStream) {
		proto := s.Connection().Protocol
		if requestPath(s) == "/slow" {
			started <- proto
			<-release
		}
		replyText(s, proto)
	})
	l := startListener(t, config.Listener{Name: "p", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2c"}}, h, Guards{})
	addr := l.Addr().String()

	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	h2c := &http.Client{Timeout: 5 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	get := func(c *http.Client, path string) (string, error) {
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for c, want := range map[*http.Client]string{h1: "HTTP/1.1", h2c: "HTTP/2"} {
		if got, err := get(c, "/"); err != nil || got != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}

	// Upgrade: h2c. The 101 comes back over HTTP/1.1, then the answer to
	// the request as stream 1 in HTTP/2 frames.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, br)
	fr.WriteSettings()
	var body strings.Builder
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading HTTP/2 frames after the upgrade: %v", err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			body.Write(d.Data())
			if d.StreamEnded() {
				break
			}
		}
	}
	// The upgrading request becomes stream 1 of the HTTP/2 connection.
	if body.String() != "HTTP/2" {
		t.Fatalf("upgraded request answered %q", body.String())
	}

	// Drain: one request in flight on each protocol, one idle connection.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	type result struct {
		body string
		err  error
	}
	results := make(chan result, 2)
	for _, cl := range []*http.Client{h1, h2c} {
		go func() {
			b, err := get(cl, "/slow")
			results <- result{b, err}
		}()
	}
	<-started
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- l.Shutdown(ctx)
	}()
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatalf("idle connection still open during the drain (read %d)", n)
	}
	close(release)
	for range 2 {
		if r := <-results; r.err != nil || !strings.HasPrefix(r.body, "HTTP/") {
			t.Fatalf("request in flight during the drain: %q %v", r.body, r.err)
		}
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
