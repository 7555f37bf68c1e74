package http2

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// startRawResponder is a server that answers every request (a HEADERS
// frame with END_STREAM) with a prepared response, ":status 200" and a
// 5-byte body, without parsing or allocating: what the client allocates
// is all a benchmark counts.
func startRawResponder(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conn net.Conn
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conn = c
		br := bufio.NewReaderSize(c, 64<<10)
		var pre [len(clientPreface)]byte
		if _, err := io.ReadFull(br, pre[:]); err != nil {
			return
		}
		fr := http2.NewFramer(c, nil)
		fr.WriteSettings()
		fr.WriteWindowUpdate(0, maxWindow-initialWindow)
		// HEADERS (:status 200, static index 8), DATA "hello" with
		// END_STREAM; the stream ids are patched per response.
		resp := []byte{
			0, 0, 1, byte(http2.FrameHeaders), byte(http2.FlagHeadersEndHeaders), 0, 0, 0, 0, 0x88,
			0, 0, 5, byte(http2.FrameData), byte(http2.FlagDataEndStream), 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o',
		}
		ack := []byte{0, 0, 0, byte(http2.FrameSettings), byte(http2.FlagSettingsAck), 0, 0, 0, 0}
		var hdr [9]byte
		for {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return
			}
			n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
			if _, err := br.Discard(n); err != nil {
				return
			}
			typ, flags := http2.FrameType(hdr[3]), http2.Flags(hdr[4])
			switch {
			case typ == http2.FrameSettings && flags&http2.FlagSettingsAck == 0:
				c.Write(ack)
			case typ == http2.FrameHeaders && flags&http2.FlagHeadersEndStream != 0:
				id := binary.BigEndian.Uint32(hdr[5:]) & (1<<31 - 1)
				binary.BigEndian.PutUint32(resp[5:], id)
				binary.BigEndian.PutUint32(resp[10+5:], id)
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		if conn != nil {
			conn.Close()
		}
		<-done
	})
	return ln.Addr().String()
}

func dialResponder(tb testing.TB) *ClientConn { return dialClient(tb, startRawResponder(tb)) }

// dialClient is this package's client on an h2c connection to addr, with
// the peer's SETTINGS in.
func dialClient(tb testing.TB, addr string) *ClientConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	cc := NewClientConn(c, ClientOptions{})
	tb.Cleanup(func() { cc.Close() })
	if err := cc.WaitSettings(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return cc
}

type requestFixture struct {
	h   *stream.HeaderMap
	buf []byte
}

func newRequestFixture() *requestFixture {
	return &requestFixture{h: reqHead("GET", "/bench", "user-agent", "bench", "accept", "*/*"), buf: make([]byte, 512)}
}

// oneRequest is one GET on a warm connection, read to its end.
func oneRequest(tb testing.TB, cc *ClientConn, req *requestFixture) {
	s, _, err := cc.Open(context.Background(), req.h, -1, nil, true)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.AwaitHead(); err != nil {
		tb.Fatal(err)
	}
	for {
		_, err := s.Read(req.buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	s.Release()
}

// BenchmarkClientRequest is one request and its response on a warm
// connection, the server's side costing nothing (startRawResponder).
func BenchmarkClientRequest(b *testing.B) { benchRequests(b, dialResponder(b)) }

// benchRequests runs oneRequest b.N times on cc, once warmed.
func benchRequests(b *testing.B, cc *ClientConn) {
	req := newRequestFixture()
	for range 100 {
		oneRequest(b, cc, req)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		oneRequest(b, cc, req)
	}
}

// requestAllocs is oneRequest's allocations on cc, once warmed.
func requestAllocs(t *testing.T, cc *ClientConn) float64 {
	req := newRequestFixture()
	for range 100 {
		oneRequest(t, cc, req)
	}
	return testing.AllocsPerRun(500, func() { oneRequest(t, cc, req) })
}

// TestClientRequestAllocs pins the client's allocations per request on a
// warm connection at none: HPACK strings come from the connection's table
// of recent ones, streams and their header maps are reused, and the
// response's HEADERS frame is read into the connection's buffer
// (frameReader), not into a frame struct of the Framer's.
func TestClientRequestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	allocs := requestAllocs(t, dialResponder(t))
	if allocs > 0 {
		t.Fatalf("%.1f allocations per request, want none", allocs)
	}
	t.Logf("%.1f allocations per request", allocs)
}

// TestClientRequestIDAllocs: a request id that changes on every request
// (as the proxy stamps one) costs no allocation of its own: it goes as a
// literal never indexed, so the encoder keeps no string of it.
func TestClientRequestIDAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	cc := dialResponder(t)
	req := &requestFixture{h: reqHead("GET", "/bench", "x-request-id", "00000000-0000-0000-0000-000000000000"), buf: make([]byte, 512)}
	id, _ := req.h.Get("x-request-id")
	n := 0
	next := func() { // a new id in place: the fixture's own bytes
		n++
		for i, v := len(id)-1, n; v > 0; i, v = i-1, v/10 {
			id[i] = byte('0' + v%10)
		}
		oneRequest(t, cc, req)
	}
	for range 10 {
		next()
	}
	with := testing.AllocsPerRun(200, next)
	base := testing.AllocsPerRun(200, func() { oneRequest(t, cc, newRequestFixtureOnce) })
	if with > base {
		t.Fatalf("%.1f allocations per request with a new x-request-id each, %.1f without one", with, base)
	}
}

var newRequestFixtureOnce = newRequestFixture()

// BenchmarkXNetClientRequest is the same exchange on x/net's client, for
// comparison.
func BenchmarkXNetClientRequest(b *testing.B) {
	c, err := net.Dial("tcp", startRawResponder(b))
	if err != nil {
		b.Fatal(err)
	}
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(c)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	req, _ := http.NewRequest("GET", "http://example.test/bench", nil)
	req.Header.Set("user-agent", "bench")
	req.Header.Set("accept", "*/*")
	buf := make([]byte, 512)
	do := func() {
		resp, err := cc.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
	}
	do()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		do()
	}
}
