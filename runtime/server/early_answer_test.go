package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestUpstreamAnswersBeforeRequestBodyEnds: an upstream that answers as
// soon as it has the request head, while the client is still sending a
// body it then stops sending. The client gets the whole answer, and then
// the connection closes: the body was not read to its end, so the
// connection cannot carry another request, and the transport's read of
// that body must not outlive the stream (the HTTP/1.1 codec reuses it for
// the next request).
func TestUpstreamAnswersBeforeRequestBodyEnds(t *testing.T) {
	upAddr := startRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
				io.Copy(io.Discard, br)
				return
			}
		}
	})
	ts := startServer(t, baseConfig(`
[access_log]
disabled = true
[[routes]]
name = "r"
backends = [ { cluster = "up" } ]
retry = { attempts = 0 }
[[clusters]]
name = "up"
endpoints = ["`+upAddr+`"]
`))
	c, err := net.Dial("tcp", ts.ListenerAddr("public"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "early" {
		t.Fatalf("status %d body %q, want the upstream's early answer", resp.StatusCode, body)
	}
	// The unfinished body leaves the connection unusable: it closes.
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Fatalf("after the answer: %q, %v; want the connection closed", rest, err)
	}
	// A new connection is served as usual.
	c2, err := net.Dial("tcp", ts.ListenerAddr("public"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c2, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "early") {
		t.Fatalf("second connection: %d %q", resp.StatusCode, body)
	}
}
