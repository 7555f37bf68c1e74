package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestListenerLimits(t *testing.T) {
	up := startEcho(t, "up", nil)
	ts := startServer(t, strings.Replace(baseConfig(`
[[routes]]
name = "r"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`), `protocols = ["http1", "h2c"]`, `protocols = ["http1", "h2c"]
max_header_bytes = "4KiB"
read_header_timeout = "300ms"`, 1))

	t.Run("oversized headers get 431", func(t *testing.T) {
		req := mustReq(t, "GET", ts.url("/"), nil)
		req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
	})

	t.Run("a client that never finishes its headers is cut off", func(t *testing.T) {
		c, err := net.Dial("tcp", ts.ListenerAddr("public"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n") // and nothing more
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		_, err = bufio.NewReader(c).ReadString('\n')
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("connection held for %v (err %v); read_header_timeout is 300ms", d, err)
		}
	})
}
