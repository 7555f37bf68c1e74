//go:build linux

package listen

import (
	"net"
	"testing"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/http1"
	"github.com/sluice-proxy/sluice/runtime/iohandle"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Every connection a listener accepts reads and writes through iohandle
// (plain non-blocking system calls) under the listener's own wrappers, so
// a request leaves the runtime's monitor thread asleep at low load.
func TestAcceptedSocketIsIOHandle(t *testing.T) {
	for _, protocols := range [][]string{{"http1"}, {"http1", "h2c"}, {"h2c"}} {
		cfg := config.Listener{Name: "l", Address: "127.0.0.1:0", Protocols: protocols}
		l, err := HTTP(cfg, streamFunc(func(s stream.ServerStream) { replyText(s, "") }), nil, zap.NewNop(),
			Guards{Conns: NewConnLimit(10, stats.NewRegistry(), zap.NewNop())})
		if err != nil {
			t.Fatal(err)
		}
		d, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.tcp.Accept() // not served: the test takes the connection itself
		if err != nil {
			t.Fatal(err)
		}
		var under net.Conn = c
		for {
			w, ok := under.(http1.WriteThrough)
			if !ok {
				break
			}
			under = w.WriteThrough()
		}
		if _, ok := under.(*iohandle.Conn); !ok {
			t.Errorf("%v: the accepted socket is a %T under %T, not an *iohandle.Conn", protocols, under, c)
		}
		c.Close()
		d.Close()
		l.tcp.Close()
	}
}

// The cap's count on iohandle's connections is kept by the socket itself
// (iohandle.OnClose), with no wrapper: a place is taken at accept and
// given back once, at the first Close, however often it is closed.
func TestConnLimitOnIOHandleConn(t *testing.T) {
	reg := stats.NewRegistry()
	cl := NewConnLimit(1, reg, zap.NewNop())
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := cl.Listener(iohandle.Listener(tcp))
	defer ln.Close()
	accept := func() net.Conn {
		t.Helper()
		d, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := accept()
	if _, ok := c.(*iohandle.Conn); !ok {
		t.Fatalf("accepted a %T, want the *iohandle.Conn itself", c)
	}
	if n := cl.active.Load(); n != 1 {
		t.Fatalf("%d active after an accept, want 1", n)
	}
	c.Close()
	c.Close()
	if n, g := cl.active.Load(), reg.Gauge("sluice_downstream_cx_active", "").Value(); n != 0 || g != 0 {
		t.Fatalf("after two Closes: %d active, gauge %d; want 0 and 0", n, g)
	}
	// The place is free again: the next connection is not refused.
	c = accept()
	if n := cl.active.Load(); n != 1 {
		t.Fatalf("%d active after the next accept, want 1", n)
	}
	c.Close()
}
