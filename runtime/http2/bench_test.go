package http2

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// okResponse is the response of the benchmark's handler; a handler may
// share a map it does not change (WriteHeaders only reads it).
var okResponse = func() *stream.HeaderMap {
	var h stream.HeaderMap
	h.Add(stream.Status, "200")
	h.Add("content-type", "text/plain")
	h.Add("content-length", "5")
	return &h
}()

var hello = []byte("hello")

var okHandler = handlerFunc(func(s stream.ServerStream) {
	if s.WriteHeaders(okResponse, false) == nil {
		s.WriteBody(hello, true)
	}
})

// rawGetter is a client that does one GET at a time on its connection:
// it writes a prepared HEADERS frame and skips the response's frames
// without parsing them, so that it allocates nothing itself.
type rawGetter struct {
	t   testing.TB
	c   net.Conn
	br  *bufio.Reader
	req []byte
	id  uint32
	hdr [9]byte
}

func newRawGetter(t testing.TB, addr string) *rawGetter {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, clientPreface)
	fr := http2.NewFramer(c, nil)
	fr.WriteSettings()
	fr.WriteSettingsAck()
	fr.WriteWindowUpdate(0, maxWindow-initialWindow) // the bodies never fill the connection's window
	// :method GET, :scheme http, :path / (static table), :authority x.
	block := []byte{0x82, 0x86, 0x84, 0x01, 0x01, 'x'}
	req := make([]byte, 9+len(block))
	req[2] = byte(len(block))
	req[3] = byte(http2.FrameHeaders)
	req[4] = byte(http2.FlagHeadersEndHeaders | http2.FlagHeadersEndStream)
	copy(req[9:], block)
	return &rawGetter{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), req: req, id: 1}
}

// get sends a GET on the next stream and reads up to its response's end.
func (g *rawGetter) get() {
	id := g.id
	g.id += 2
	binary.BigEndian.PutUint32(g.req[5:], id)
	if _, err := g.c.Write(g.req); err != nil {
		g.t.Fatal(err)
	}
	hdr := g.hdr[:]
	for {
		if _, err := io.ReadFull(g.br, hdr); err != nil {
			g.t.Fatal(err)
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if _, err := g.br.Discard(n); err != nil {
			g.t.Fatal(err)
		}
		if http2.FrameType(hdr[3]) == http2.FrameRSTStream {
			g.t.Fatal("stream reset")
		}
		if http2.FrameType(hdr[3]) == http2.FrameData && hdr[4]&byte(http2.FlagDataEndStream) != 0 &&
			binary.BigEndian.Uint32(hdr[5:]) == id {
			return
		}
	}
}

// BenchmarkRequest is one GET and its 200 on an h2c connection over
// loopback, one stream at a time; the allocations reported are the
// server's (see rawGetter).
func BenchmarkRequest(b *testing.B) {
	ts := startServer(b, &Server{}, okHandler, nil)
	g := newRawGetter(b, ts.addr())
	for range 100 { // warm the pools and the HPACK tables
		g.get()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		g.get()
	}
}

// TestRequestAllocs pins the server's allocations for one request and
// response at none: the HEADERS frame is read into the connection's
// buffer, the fields go from the HPACK tables into the stream's pooled
// map, the handler runs on a goroutine kept from an earlier stream
// (workers); nothing per field, per frame written or per write batch.
func TestRequestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	ts := startServer(t, &Server{}, okHandler, nil)
	g := newRawGetter(t, ts.addr())
	for range 100 {
		g.get()
	}
	if n := testing.AllocsPerRun(1000, g.get); n > 0 {
		t.Errorf("%.1f allocations a request, want none", n)
	}
}

// BenchmarkRequestXNet is the same request served by x/net's HTTP/2
// server, the one this codec replaces: the figure to compare with.
func BenchmarkRequestXNet(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "text/plain")
		w.Header().Set("content-length", "5")
		w.Write(hello)
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go (&http2.Server{}).ServeConn(c, &http2.ServeConnOpts{Handler: h})
		}
	}()
	g := newRawGetter(b, ln.Addr().String())
	for range 100 {
		g.get()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		g.get()
	}
}

// dialServer is this package's client on an h2c connection to ts.
func dialServer(tb testing.TB, ts *testServer) *ClientConn { return dialClient(tb, ts.addr()) }

// BenchmarkClientServer is one GET and its 200 with this package's
// client and server on both ends of a loopback connection, one stream at
// a time: allocs/op is the codec's whole cost, both sides (what a request
// through the proxy pays in runtime/http2 downstream and upstream).
func BenchmarkClientServer(b *testing.B) {
	benchRequests(b, dialServer(b, startServer(b, &Server{}, okHandler, nil)))
}

// TestClientServerAllocs pins BenchmarkClientServer's allocations at
// none: a warm connection's request and response cost the codec nothing
// on either side.
func TestClientServerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	if n := requestAllocs(t, dialServer(t, startServer(t, &Server{}, okHandler, nil))); n > 0 {
		t.Errorf("%.1f allocations a request, client and server, want none", n)
	}
}
