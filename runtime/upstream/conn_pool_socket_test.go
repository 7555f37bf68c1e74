//go:build linux

package upstream

import (
	"bytes"
	"context"
	"io"
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

// sendQuiet on a socket whose send buffer a request does not fit: it
// writes what the buffer takes (a write cut short, then EAGAIN) and
// reports how much, for the caller to write the rest; every byte
// arrives once, in order. Then, with room, it writes a request whole
// and waits for the answer.
func TestSendQuietPartialWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	d := &dialer{limiter: &connLimiter{max: 1, gauge: nopGauge{}}}
	c, err := d.dialTCP(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-accepted
	defer srv.Close()
	c.(*iohandle.Conn).SetWriteBuffer(4096)
	var p idlePeek
	p.init(c)
	if !p.canSendQuiet() {
		t.Fatal("no one-step send on a plain iohandle socket")
	}

	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	n, err := p.sendQuiet(big, true)
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || n >= len(big) {
		t.Fatalf("sendQuiet wrote %d of %d bytes into a small send buffer; want part of them", n, len(big))
	}
	got := make(chan []byte)
	go func() {
		b := make([]byte, len(big))
		io.ReadFull(srv, b)
		got <- b
	}()
	if _, err := c.Write(big[n:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(<-got, big) {
		t.Fatal("the bytes that arrived are not the request's")
	}

	// A request that fits: written whole, then the wait for the answer.
	go func() {
		b := make([]byte, 5)
		if _, err := io.ReadFull(srv, b); err == nil {
			srv.Write([]byte("answer"))
		}
	}()
	if n, err := p.sendQuiet([]byte("hello"), true); n != 5 || err != nil {
		t.Fatalf("sendQuiet of a small request: %d, %v; want 5, nil", n, err)
	}
	b := make([]byte, 6)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "answer" {
		t.Fatalf("answer %q, %v", b, err)
	}
}
