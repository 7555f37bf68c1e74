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
