package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// startTCPEcho is a TCP app that echoes until the client half-closes.
func startTCPEcho(t testing.TB) string { return startTCPApp(t, "") }

// startTCPApp is a TCP app that sends greeting (if any) on each connection,
// then echoes until the client half-closes.
func startTCPApp(t testing.TB, greeting string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, greeting)
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// rawabiWasm is hostabi's script-driven test guest: its config is a
// script per callback.
func rawabiWasm(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "hostabi", "testdata", "go", "rawabi", "rawabi.wasm")
}

// readN reads exactly n bytes or fails after a bound.
func readN(t testing.TB, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %d bytes: %v (got %q)", n, err, buf)
	}
	return string(buf)
}

// TestMeshTCPEchoThroughTwoSidecars: client -> A's tcp listener (plain) ->
// mTLS -> B's tcp listener -> echo app, with a network filter on each
// side rewriting bytes (B wraps what the client sends in [ ], A prefixes
// what comes back with <), B seeing A's identity, and the close callbacks.
func TestMeshTCPEchoThroughTwoSidecars(t *testing.T) {
	pki := newMeshPKI(t, "example.org")
	echo := startTCPEcho(t)
	bCert, bKey := pki.issue("payments", idPayments, time.Time{}, time.Hour)
	aCert, aKey := pki.issue("orders", idOrders, time.Time{}, time.Hour)
	wasm := rawabiWasm(t)
	b := startServer(t, sidecarConfig(bCert, bKey, pki.bundle(), "127.0.0.1:1", "strict", fmt.Sprintf(`
[[plugins]]
name = "wrap"
wasm = %q
config_raw = """
downstream_data: buf_set 2 0 0 [ | buf_set 2 100000 0 ] | ret 0
downstream_close: log 2 tcp-downstream-closed
"""

[[listeners]]
name = "tcp-in"
address = "127.0.0.3:0"
protocols = ["tcp"]
cluster = "echo"
plugins = ["wrap"]
tls = { cert = %q, key = %q, client_ca = %q }

[[clusters]]
name = "echo"
endpoints = [%q]
`, wasm, bCert, bKey, pki.bundle(), echo)))
	aExtra := fmt.Sprintf(`
[[plugins]]
name = "mark"
wasm = %q
config_raw = "upstream_data: buf_set 3 0 0 < | ret 0\n"

[[listeners]]
name = "tcp-out"
address = "127.0.0.3:0"
protocols = ["tcp"]
cluster = "to-b"
plugins = ["mark"]

[[listeners]]
name = "tcp-wrong-id"
address = "127.0.0.4:0"
protocols = ["tcp"]
cluster = "to-b-wrong"

[[clusters]]
name = "to-b"
endpoints = [%q]
tls = { ca = %q, cert = %q, key = %q, identity = %q }

[[clusters]]
name = "to-b-wrong"
endpoints = [%q]
tls = { ca = %q, cert = %q, key = %q, identity = "spiffe://example.org/ns/default/sa/someone-else" }
`, wasm, b.ListenerAddr("tcp-in"), pki.bundle(), aCert, aKey, idPayments,
		b.ListenerAddr("tcp-in"), pki.bundle(), aCert, aKey)
	a := startServer(t, sidecarConfig(aCert, aKey, pki.bundle(), "127.0.0.1:1", "strict", aExtra))

	c, err := net.Dial("tcp", a.ListenerAddr("tcp-out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"hello", "again"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got, want := readN(t, c, len(msg)+3), "<["+msg+"]"; got != want {
			t.Fatalf("echo %q, want %q", got, want)
		}
	}
	c.Close()
	line := waitMessage(t, b, "connection")
	if line["source_principal"] != idOrders || line["listener"] != "tcp-in" {
		t.Errorf("B's connection log: %v", line)
	}
	waitMessage(t, b, "tcp-downstream-closed")

	// A peer that is not the one expected is refused by A itself.
	c2, err := net.Dial("tcp", a.ListenerAddr("tcp-wrong-id"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("x"))
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c2.Read(make([]byte, 8)); err == nil || n != 0 {
		t.Fatalf("wrong identity: read %d, %v; want the connection closed", n, err)
	}
	// Logged with its reason by the cluster's TLS, as for HTTP clusters.
	if err, _ := waitMessage(t, a, "upstream TLS handshake failed")["error"].(string); !strings.Contains(err, "(wrong_identity)") {
		t.Errorf("refusal logged as %q, want its reason", err)
	}
}

// TestTCPNetworkFilterClosesAndDrain: a built-in filter (ip-restriction)
// closes refused connections; shutdown lets an open connection finish.
func TestTCPNetworkFilterClosesAndDrain(t *testing.T) {
	echo := startTCPEcho(t)
	ts := startServer(t, baseConfig(fmt.Sprintf(`
[[plugins]]
name = "no-loopback"
wasm = "builtin:ip-restriction"
config = { deny = ["127.0.0.1"] }

[[listeners]]
name = "denied"
address = "127.0.0.3:0"
protocols = ["tcp"]
cluster = "echo"
plugins = ["no-loopback"]

[[listeners]]
name = "open"
address = "127.0.0.4:0"
protocols = ["tcp"]
cluster = "echo"

# Holds client bytes until a tick (every 50ms) resumes the connection.
[[plugins]]
name = "hold"
wasm = %q
config_raw = """
configure: tick 50
downstream_data: ret 1
tick: effective | continue 2
"""

[[listeners]]
name = "held"
address = "127.0.0.5:0"
protocols = ["tcp"]
cluster = "echo"
plugins = ["hold"]

[[routes]]
name = "r"
backends = [ { cluster = "echo" } ]

[[clusters]]
name = "echo"
endpoints = [%q]
`, rawabiWasm(t), echo)))
	h, err := net.Dial("tcp", ts.ListenerAddr("held"))
	if err != nil {
		t.Fatal(err)
	}
	h.Write([]byte("held"))
	if got := readN(t, h, 4); got != "held" {
		t.Fatalf("resumed: %q", got)
	}
	h.Close()

	c, err := net.Dial("tcp", ts.ListenerAddr("denied"))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hi"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 8)); err == nil || n != 0 {
		t.Fatalf("denied: read %d, %v", n, err)
	}
	c.Close()

	// Drain: an open connection keeps working after shutdown starts, new
	// ones are refused, and shutdown returns once it ends.
	open, err := net.Dial("tcp", ts.ListenerAddr("open"))
	if err != nil {
		t.Fatal(err)
	}
	open.Write([]byte("one"))
	readN(t, open, 3)
	addr := ts.ListenerAddr("open")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	open.Write([]byte("two"))
	if got := readN(t, open, 3); got != "two" {
		t.Fatalf("during drain: %q", got)
	}
	select {
	case err := <-done:
		t.Fatalf("shutdown returned with a connection open: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	open.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, open)
	open.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not return after the last connection ended")
	}
}

// TestTCPConnectFailureEjects: a TCP listener's cluster is the HTTP
// clusters' upstream.Cluster: its load balancer passes over an endpoint
// that refuses connections (each connection still reaches the app), and
// those connect failures eject it as failed HTTP tries would.
func TestTCPConnectFailureEjects(t *testing.T) {
	echo := startTCPEcho(t)
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bad := refused.Addr().String()
	refused.Close()
	ts := startServer(t, baseConfig(fmt.Sprintf(`
[[listeners]]
name = "tcp"
address = "127.0.0.3:0"
protocols = ["tcp"]
cluster = "app"

[[clusters]]
name = "app"
lb = "round_robin"
endpoints = [%q, %q]
outlier = { consecutive_5xx = 2, base_ejection_time = "1m" }
`, bad, echo)))
	for i := range 4 {
		c, err := net.Dial("tcp", ts.ListenerAddr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("hello %d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, c, len(msg)); got != msg {
			t.Fatalf("connection %d: echo %q, want %q", i, got, msg)
		}
		c.Close()
	}
	if got := waitMessage(t, ts, "endpoint ejected")["endpoint"]; got != bad {
		t.Errorf("ejected %v, want the refusing endpoint %s", got, bad)
	}
}
