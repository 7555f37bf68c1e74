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
