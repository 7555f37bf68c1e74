package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMaxConnections: [server] max_connections caps the downstream
// connections of every data-plane listener together (HTTP and TCP). Past
// the cap a connection is closed as soon as it is accepted and counted,
// the admin listener goes on answering, and a place freed is taken again.
func TestMaxConnections(t *testing.T) {
	up := startEcho(t, "up", nil)
	ts := startServer(t, strings.Replace(baseConfig(`
[[listeners]]
name = "tcp"
address = "127.0.0.1:0"
protocols = ["tcp"]
cluster = "up"

[[routes]]
name = "r"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`), "drain_timeout = \"5s\"", "drain_timeout = \"5s\"\nmax_connections = 5", 1))
	reg := ts.Registry()
	active := func() int64 { return reg.Gauge("sluice_downstream_cx_active", "").Value() }
	overflow := func() int64 { return reg.Counter("sluice_downstream_cx_overflow_total", "").Value() }
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (active %d, overflow %d)", what, active(), overflow())
			}
		}
	}
	dial := func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Five idle connections take every place.
	var idle []net.Conn
	for i := 0; i < 5; i++ {
		idle = append(idle, dial(ts.ListenerAddr("public")))
	}
	waitFor("5 active connections", func() bool { return active() == 5 })

	// Past the cap, on either listener: closed at once, never served.
	before := overflow()
	var extra []net.Conn
	for i := 0; i < 20; i++ {
		addr := ts.ListenerAddr("public")
		if i%2 == 1 {
			addr = ts.ListenerAddr("tcp")
		}
		extra = append(extra, dial(addr))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(extra))
	for i, c := range extra {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, errs[i] = c.Read(make([]byte, 1))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d past the cap: read error %v, want it closed at once", i, err)
		}
	}
	waitFor("20 refused connections counted", func() bool { return overflow() == before+20 })

	// The admin listener is not counted and keeps answering.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ts.AdminAddr() + "/ready")
	if err != nil {
		t.Fatalf("admin under a full data plane: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin /ready: %d", resp.StatusCode)
	}

	// Places come back as connections close.
	for _, c := range idle {
		c.Close()
	}
	waitFor("the idle connections' places back", func() bool { return active() == 0 })
	r, e := getJSON(t, &http.Client{Timeout: 5 * time.Second}, mustReq(t, "GET", ts.url("/after"), nil))
	if r.StatusCode != 200 || e.Path != "/after" {
		t.Fatalf("after the flood: %d %+v", r.StatusCode, e)
	}
}
