package l4

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	up "github.com/sluice-proxy/sluice/runtime/upstream"
)

type dialAddr string

func (a dialAddr) Connect(ctx context.Context, _ up.Pick) (net.Conn, string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", string(a))
	return c, string(a), err
}

func echoServer(t *testing.T) string {
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

func start(t *testing.T, up Upstream) *Listener {
	t.Helper()
	l, err := Listen(Options{
		Listener: config.Listener{Name: "t", Address: "127.0.0.1:0", Protocols: []string{"tcp"}},
		Resolve:  func() (*Resolution, error) { return &Resolution{Upstream: up}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	return l
}

// A megabyte each way at once: neither half waits on the other, and the
// client's half close reaches the backend.
func TestProxyFullDuplexAndHalfClose(t *testing.T) {
	l := start(t, dialAddr(echoServer(t)))
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes (%v), want %d identical", len(got), err, len(payload))
	}
}

func TestConnectFailureClosesClient(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	l := start(t, dialAddr(dead))
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d, %v; want the connection closed", n, err)
	}
}

func TestShutdownClosesIdleConnectionsAtDeadline(t *testing.T) {
	l, err := Listen(Options{
		Listener: config.Listener{Name: "t", Address: "127.0.0.1:0", Protocols: []string{"tcp"}},
		Resolve:  func() (*Resolution, error) { return &Resolution{Upstream: dialAddr(echoServer(t))}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Serve()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = l.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "1 connections closed") {
		t.Fatalf("Shutdown: %v", err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("after the deadline: read %d, %v", n, err)
	}
}
