package upstream

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// startEcho is a 127.0.0.1 TCP server echoing what it reads.
func startEcho(t *testing.T) string {
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
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// echoOnce writes msg on c and wants it back.
func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q, %v; want %q", got, err, msg)
	}
}

// TestConnectEjectsEndpointThatRefuses: a TCP connection (Connect, what
// TCP listeners use) goes to an endpoint the load balancer picks; an
// endpoint that refuses connections is passed over for the next one, and
// its connect failures count toward outlier ejection as an HTTP try's do,
// until it is ejected.
func TestConnectEjectsEndpointThatRefuses(t *testing.T) {
	good, bad := startEcho(t), closedAddr(t)
	m, reg := newTestManager(t, nil, config.Cluster{
		Name: "tcp", LB: "round_robin", Endpoints: []string{bad, good},
		Outlier: &config.Outlier{Consecutive5xx: 2, BaseEjectionTime: config.Duration(time.Minute)},
	})
	c := m.Cluster("tcp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	badEP := c.hosts.Load().byAddr[bad]
	for i := 0; !badEP.ejected.Load(); i++ {
		if i == 10 {
			t.Fatalf("refusing endpoint not ejected after %d connections (streak %d)", i, badEP.consecutive5xx.Load())
		}
		conn, addr, err := c.Connect(ctx, Pick{})
		if err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		if addr != good {
			t.Fatalf("connected to %s, want %s", addr, good)
		}
		echoOnce(t, conn, "ping")
		conn.Close()
	}
	if !strings.Contains(metricText(t, reg), `sluice_upstream_ejections_total{cluster="tcp"} 1`) {
		t.Error("ejection not counted")
	}
	// With the only other endpoint gone too, the error names both.
	m2, _ := newTestManager(t, nil, config.Cluster{Name: "none", Endpoints: []string{bad, closedAddr(t)}})
	if _, _, err := m2.Cluster("none").Connect(ctx, Pick{}); failureOf(err) != ConnectFailure || !strings.Contains(err.Error(), "2 endpoints tried") {
		t.Errorf("all refusing: %v, want a connect failure naming both tries", err)
	}
}

// TestConnectHoldsMaxConnections: a TCP connection holds one of the
// cluster's max_connections until it is closed, as a pooled HTTP
// connection does; past the limit Connect overflows.
func TestConnectHoldsMaxConnections(t *testing.T) {
	echo := startEcho(t)
	m, reg := newTestManager(t, nil, config.Cluster{
		Name: "tcp", Endpoints: []string{echo}, ConnectTimeout: config.Duration(100 * time.Millisecond),
		Limits: config.Limits{MaxConnections: 1},
	})
	c := m.Cluster("tcp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, _, err := c.Connect(ctx, Pick{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metricText(t, reg), `sluice_upstream_cx_active{cluster="tcp"} 1`) {
		t.Error("connection not counted in cx_active")
	}
	if _, _, err := c.Connect(ctx, Pick{}); failureOf(err) != Overflow {
		t.Fatalf("second connection at max_connections 1: %v, want an overflow", err)
	}
	echoOnce(t, first, "still")
	first.Close()
	second, _, err := c.Connect(ctx, Pick{})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	echoOnce(t, second, "again")
	second.Close()
	if got := c.hosts.Load().byAddr[echo].active.Load(); got != 0 {
		t.Errorf("endpoint active count %d after close, want 0", got)
	}
}
