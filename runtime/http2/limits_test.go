package http2

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// floodServer serves echo and counts the connections its limits closed.
func floodServer(t *testing.T, srv *Server) (*testServer, *atomic.Int32) {
	var closed atomic.Int32
	srv.OnFloodClose = func(string) { closed.Add(1) }
	return startServer(t, srv, echo, nil), &closed
}

// servedMeanwhile: a well-behaved client on another connection is served.
func servedMeanwhile(t *testing.T, addr string) {
	t.Helper()
	r := dialRaw(t, addr)
	r.request(1, true, "/")
	r.expectStatus(1, "200")
}

// TestRapidReset: a client that opens streams and resets them at once
// (CVE-2023-44487) gets GOAWAY ENHANCE_YOUR_CALM once half of Envoy's 500
// streams were reset prematurely, before it has sent them all.
func TestRapidReset(t *testing.T) {
	ts, closed := floodServer(t, &Server{})
	r := dialRaw(t, ts.addr())
	go func() {
		block := r.block(":method", "GET", ":scheme", "http", ":path", "/")
		for id := uint32(1); id < 2*1000; id += 2 {
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true})
			if r.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	g := r.expectGoAway(http2.ErrCodeEnhanceYourCalm)
	if g.LastStreamID >= 2*1000-1 {
		t.Errorf("GOAWAY after the last stream (%d): the limit did not trip", g.LastStreamID)
	}
	r.expectClosed()
	if closed.Load() != 1 {
		t.Errorf("OnFloodClose called %d times", closed.Load())
	}
	servedMeanwhile(t, ts.addr())
}

// TestResetsAfterResponsesAreFine: a client that resets streams after
// their response (a normal cancel) is not a rapid-reset attacker.
func TestResetsAfterResponsesAreFine(t *testing.T) {
	ts, closed := floodServer(t, &Server{})
	r := dialRaw(t, ts.addr())
	for id := uint32(1); id < 2*600; id += 2 {
		r.request(id, false, "/")
		r.fr.WriteData(id, true, nil)
		r.expectStatus(id, "200")
		r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	r.request(2*600+1, true, "/")
	r.expectStatus(2*600+1, "200")
	if closed.Load() != 0 {
		t.Error("connection closed as a flood")
	}
}

// TestFloods: each of Envoy's flood protections closes the connection
// with GOAWAY (ENHANCE_YOUR_CALM or PROTOCOL_ERROR), and a client on
// another connection is served meanwhile.
func TestFloods(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  http2.ErrCode
		flood func(r *rawConn)
	}{
		{"empty DATA frames", http2.ErrCodeProtocol, func(r *rawConn) {
			r.request(1, false, "/")
			for range 10 {
				r.fr.WriteData(1, false, nil)
			}
		}},
		{"empty CONTINUATION frames", http2.ErrCodeProtocol, func(r *rawConn) {
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "GET")})
			for range 10 {
				r.fr.WriteContinuation(1, false, nil)
			}
		}},
		{"CONTINUATION frames past the header list limit", http2.ErrCodeEnhanceYourCalm, func(r *rawConn) {
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "GET")})
			// Never-indexed fields: each costs its bytes on the wire.
			r.hbuf.Reset()
			for range 100 {
				r.enc.WriteField(hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("a", 100), Sensitive: true})
			}
			for range 20 {
				if r.fr.WriteContinuation(1, false, r.hbuf.Bytes()) != nil {
					return
				}
			}
		}},
		{"PRIORITY frames", http2.ErrCodeEnhanceYourCalm, func(r *rawConn) {
			for i := range 200 {
				r.fr.WritePriority(uint32(2*i+1), http2.PriorityParam{Weight: 1})
			}
		}},
		{"WINDOW_UPDATE frames", http2.ErrCodeEnhanceYourCalm, func(r *rawConn) {
			for range 200 {
				r.fr.WriteWindowUpdate(0, 1)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, closed := floodServer(t, &Server{})
			r := dialRaw(t, ts.addr())
			go tc.flood(r)
			r.expectGoAway(tc.code)
			r.expectClosed()
			if closed.Load() != 1 {
				t.Errorf("OnFloodClose called %d times", closed.Load())
			}
			servedMeanwhile(t, ts.addr())
		})
	}
}

// TestPingFloodWithoutReading: a client that sends PINGs and never reads
// the acknowledgements has its connection closed once more than Envoy's
// 1000 control frames wait for it, so that they do not pile up in memory.
func TestPingFloodWithoutReading(t *testing.T) {
	// Small socket buffers both ways: the unread acknowledgements pile
	// up in the server after a few thousand PINGs, not a few hundred
	// thousand. The client's receive buffer is set before connect: shrunk
	// on an established connection, it holds less than the window the
	// client already advertised, so the kernel drops the server's segments
	// and both sides fall into retransmission backoff, which stalled the
	// PINGs for seconds on a loaded machine.
	var closed atomic.Int32
	srv := &Server{OnFloodClose: func(string) { closed.Add(1) }}
	ts := startServerWith(t, srv, echo, nil, func(c net.Conn) net.Conn { c.(*net.TCPConn).SetWriteBuffer(4096); return c })
	r := dialRawWith(t, &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}, ts.addr())
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 0; i < 2_000_000; i++ {
			if r.fr.WritePing(false, [8]byte{byte(i)}) != nil {
				return
			}
		}
	}()
	// The server ends the connection; the client's writes may only see it
	// once its socket is closed (TCP need not reset a sender that waits).
	ts.waitEnded(t)
	r.c.Close()
	<-wrote
	if err := <-ts.errs; !errors.Is(err, errOutboundFlood) {
		t.Errorf("ServeConn: %v", err)
	}
	if closed.Load() != 1 {
		t.Errorf("OnFloodClose called %d times", closed.Load())
	}
	servedMeanwhile(t, ts.addr())
}

// TestHPACKBomb: a few bytes that expand into headers past the header
// list limit (a large dynamic-table entry referenced again and again)
// get 431 without reaching the handler, and the connection goes on.
func TestHPACKBomb(t *testing.T) {
	var calls atomic.Int32
	ts := startServer(t, &Server{}, handlerFunc(func(s stream.ServerStream) { calls.Add(1); echo(s) }), nil)
	r := dialRaw(t, ts.addr())
	r.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}} {
		r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	r.enc.WriteField(hpack.HeaderField{Name: "x-big", Value: strings.Repeat("b", 4000)})
	block := append([]byte(nil), r.hbuf.Bytes()...)
	for range 100 {
		block = append(block, 0x80|62) // indexed: the newest dynamic entry, x-big
	}
	if len(block) > 5000 {
		t.Fatalf("the bomb is %d bytes", len(block))
	}
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true})
	r.expectStatus(1, "431")
	r.request(3, true, "/", "x-big", strings.Repeat("b", 4000)) // indexed by our encoder: the tables still agree
	r.expectStatus(3, "200")
	if calls.Load() != 1 {
		t.Errorf("handler called %d times, want once (stream 3)", calls.Load())
	}
}

// TestConcurrentStreamLimit: past SETTINGS_MAX_CONCURRENT_STREAMS a
// stream is refused (REFUSED_STREAM, safe to retry); the open ones are
// served, and a stream opened once they are done is too.
func TestConcurrentStreamLimit(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, &Server{MaxConcurrentStreams: 2}, handlerFunc(func(s stream.ServerStream) {
		<-release
		echo(s)
	}), nil)
	r := dialRaw(t, ts.addr())
	r.request(1, true, "/")
	r.request(3, true, "/")
	r.request(5, true, "/")
	r.expectRST(5, http2.ErrCodeRefusedStream)
	close(release)
	got := map[uint32]string{}
	for len(got) < 2 {
		f := r.expect(func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok }).(*http2.MetaHeadersFrame)
		got[f.StreamID] = f.PseudoValue("status")
	}
	if got[1] != "200" || got[3] != "200" {
		t.Errorf("responses %v", got)
	}
	r.request(7, true, "/")
	r.expectStatus(7, "200")
}
