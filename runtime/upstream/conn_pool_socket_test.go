//go:build linux

package upstream

import (
	"context"
	"net"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/iohandle"
)

type nopGauge struct{}

func (nopGauge) Add(int64) {}

// The pools' sockets read and write through iohandle (plain non-blocking
// system calls), so an upstream call leaves the runtime's monitor thread
// asleep at low load.
func TestDialedSocketIsIOHandle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	d := &dialer{limiter: &connLimiter{max: 1, gauge: nopGauge{}}}
	c, err := d.dialTCP(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if sock, _ := socketOf(c); !isIOHandle(sock) {
		t.Fatalf("the dialed socket is a %T, not an *iohandle.Conn", sock)
	}
	var p idlePeek
	p.init(c)
	if p.raw == nil {
		t.Fatal("the idle check cannot peek at the wrapped socket")
	}
	// Its Write is a plain write, so the one-step send (peek, write, wait
	// for the answer) may write on its descriptor.
	if !p.canSendQuiet() {
		t.Fatal("a plain-text iohandle socket does not take the one-step send")
	}
}

func isIOHandle(c net.Conn) bool {
	_, ok := c.(*iohandle.Conn)
	return ok
}

// A dialed iohandle socket is handed out as it is, and gives its
// connection slot back itself, once, when closed (iohandle.OnClose).
func TestDialedSocketGivesItsSlotBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	d := &dialer{limiter: &connLimiter{max: 1, gauge: nopGauge{}}}
	for i := 0; i < 3; i++ {
		c, err := d.dialTCP(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if !isIOHandle(c) {
			t.Fatalf("dialed a %T, want the *iohandle.Conn itself", c)
		}
		if n := d.limiter.active.Load(); n != 1 {
			t.Fatalf("%d slots taken with one connection open, want 1", n)
		}
		c.Close()
		c.Close()
		if n := d.limiter.active.Load(); n != 0 {
			t.Fatalf("%d slots taken after two Closes, want 0", n)
		}
	}
}
