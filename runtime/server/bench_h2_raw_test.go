package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
)

// The HTTP/2 counterparts of BenchmarkProxyHTTP1Raw: one h2c request
// through the proxy to an h2c upstream, with a raw client and a raw
// upstream that write prepared frames and skip what they read without
// decoding it. Neither allocates per request, so allocs/op is the
// proxy's own: the downstream codec, the connection manager, the
// upstream h2 pool and client codec.
//
// Run: go test -run '^$' -bench 'ProxyH2Raw|ProxyGRPCUnaryRaw' -benchmem ./runtime/server
// (add -memprofile to see what allocates).

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2Frame is one frame's bytes: its 9-byte header and payload.
func h2Frame(typ http2.FrameType, flags http2.Flags, payload []byte) []byte {
	f := make([]byte, 9+len(payload))
	f[0], f[1], f[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	f[3], f[4] = byte(typ), byte(flags)
	copy(f[9:], payload)
	return f
}

// hpackLiteral is a header field as HPACK's "literal without indexing"
// (RFC 7541 6.2.2) with a static-table name index (0 for a new name), no
// Huffman: the raw upstream never touches a dynamic table, so its
// prepared blocks are valid on every response.
func hpackLiteral(nameIndex int, name, value string) []byte {
	var b []byte
	if nameIndex < 15 {
		b = append(b, byte(nameIndex))
	} else {
		b = append(b, 0x0f, byte(nameIndex-15))
	}
	return appendNameValue(b, nameIndex, name, value)
}

// hpackIndexing is the same field as a "literal with incremental
// indexing" (RFC 7541 6.2.1): the client's first request adds its fields
// to the proxy's decoder table and the later ones name them by index, as
// real clients (h2load, grpc-go) do.
func hpackIndexing(nameIndex int, name, value string) []byte {
	return appendNameValue([]byte{0x40 | byte(nameIndex)}, nameIndex, name, value) // nameIndex < 63
}

// hpackIndexed is a field by its index (RFC 7541 6.1), below 127.
func hpackIndexed(index int) []byte { return []byte{0x80 | byte(index)} }

func appendNameValue(b []byte, nameIndex int, name, value string) []byte {
	if nameIndex == 0 {
		b = append(b, byte(len(name)))
		b = append(b, name...)
	}
	b = append(b, byte(len(value)))
	return append(b, value...)
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// h2Exchange is one request as frames and what its response must hold.
type h2Exchange struct {
	first    [][]byte // the first request's frames (indexing its fields)
	request  [][]byte // later requests' frames; the stream id is patched into each
	response [][]byte // the raw upstream's answer, patched the same way
	dataLen  int      // the response DATA bytes the client must see
}

// The GET: :method GET, :scheme http, :path / (static), :authority
// (dynamic, 62 once the first request indexed it). The answer: :status
// 200, content-type, content-length and a 20-byte body.
var h2Get = h2Exchange{
	first: [][]byte{
		h2Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream,
			concat([]byte{0x82, 0x86, 0x84}, hpackIndexing(1, "", "bench.local"))),
	},
	request: [][]byte{
		h2Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream,
			concat([]byte{0x82, 0x86, 0x84}, hpackIndexed(62))),
	},
	response: [][]byte{
		h2Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders,
			concat([]byte{0x88}, hpackLiteral(31, "", "text/plain"), hpackLiteral(28, "", "20"))),
		h2Frame(http2.FrameData, http2.FlagDataEndStream, []byte("hello from upstream\n")),
	},
	dataLen: 20,
}

// grpcMessage is a length-prefixed gRPC message (compressed flag 0).
func grpcMessage(msg string) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// The gRPC unary call: POST with content-type application/grpc and te,
// one 5-byte-prefixed message; the answer: headers, one message and the
// trailers (grpc-status 0) that end the stream.
// The first request indexes :path, :authority, content-type and te (the
// newest at 62), the later ones name all four by index.
var h2GRPCUnary = h2Exchange{
	first: [][]byte{
		h2Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, concat(
			[]byte{0x83, 0x86},
			hpackIndexing(4, "", "/grpc.testing.TestService/UnaryCall"),
			hpackIndexing(1, "", "bench.local"),
			hpackIndexing(31, "", "application/grpc"),
			hpackIndexing(0, "te", "trailers"))),
		h2Frame(http2.FrameData, http2.FlagDataEndStream, grpcMessage("hello")),
	},
	request: [][]byte{
		h2Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders,
			concat([]byte{0x83, 0x86}, hpackIndexed(65), hpackIndexed(64), hpackIndexed(63), hpackIndexed(62))),
		h2Frame(http2.FrameData, http2.FlagDataEndStream, grpcMessage("hello")),
	},
	response: [][]byte{
		h2Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders,
			concat([]byte{0x88}, hpackLiteral(31, "", "application/grpc"))),
		h2Frame(http2.FrameData, 0, grpcMessage("hello")),
		h2Frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream,
			hpackLiteral(0, "grpc-status", "0")),
	},
	dataLen: 10,
}

// patchStream writes id into each frame of frames and returns them as
// one buffer (reused: frames are written into out).
func patchStream(out []byte, frames [][]byte, id uint32) []byte {
	out = out[:0]
	for _, f := range frames {
		n := len(out)
		out = append(out, f...)
		binary.BigEndian.PutUint32(out[n+5:], id)
	}
	return out
}

// startRawH2Upstream is an h2c upstream that answers every request (the
// frame that ends its stream, HEADERS or DATA) with ex.response, acks
// SETTINGS and PING, and gives the connection a window that never runs
// out; it decodes nothing and allocates nothing per request.
func startRawH2Upstream(t testing.TB, ex h2Exchange) string {
	return startRawServer(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 64<<10)
		var pre [len(h2Preface)]byte
		if _, err := io.ReadFull(br, pre[:]); err != nil || string(pre[:]) != h2Preface {
			return
		}
		fr := http2.NewFramer(c, nil)
		fr.WriteSettings()
		fr.WriteWindowUpdate(0, 1<<31-1-65535)
		ack := h2Frame(http2.FrameSettings, http2.FlagSettingsAck, nil)
		pong := h2Frame(http2.FramePing, http2.FlagPingAck, make([]byte, 8))
		out := make([]byte, 0, 256)
		var hdr [9]byte
		for {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return
			}
			n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
			typ, flags := http2.FrameType(hdr[3]), http2.Flags(hdr[4])
			if typ == http2.FramePing && n == 8 {
				if _, err := io.ReadFull(br, pong[9:]); err != nil {
					return
				}
				if flags&http2.FlagPingAck == 0 {
					c.Write(pong)
				}
				continue
			}
			if _, err := br.Discard(n); err != nil {
				return
			}
			switch {
			case typ == http2.FrameSettings && flags&http2.FlagSettingsAck == 0:
				c.Write(ack)
			case (typ == http2.FrameHeaders || typ == http2.FrameData) && flags&http2.FlagDataEndStream != 0:
				// END_STREAM is 0x1 on both HEADERS and DATA.
				out = patchStream(out, ex.response, binary.BigEndian.Uint32(hdr[5:])&(1<<31-1))
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}
	})
}

// rawH2Client does one request at a time on one h2c connection: it writes
// the exchange's prepared frames and skips the response's frames up to
// the one that ends its stream, counting DATA bytes, without decoding.
type rawH2Client struct {
	tb  testing.TB
	c   net.Conn
	br  *bufio.Reader
	ex  h2Exchange
	out []byte
	id  uint32
	hdr [9]byte
}

var errRawH2 = errors.New("response not as prepared")

func newRawH2Client(tb testing.TB, addr string, ex h2Exchange) *rawH2Client {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	io.WriteString(c, h2Preface)
	fr := http2.NewFramer(c, nil)
	fr.WriteSettings()
	fr.WriteSettingsAck()                  // to the proxy's SETTINGS, sent ahead: the client never decodes them
	fr.WriteWindowUpdate(0, 1<<31-1-65535) // the response bodies never fill the connection's window
	return &rawH2Client{tb: tb, c: c, br: bufio.NewReaderSize(c, 64<<10), ex: ex, out: make([]byte, 0, 256), id: 1}
}

func (r *rawH2Client) roundTrip() {
	if err := r.do(); err != nil {
		r.tb.Fatal(err)
	}
}

func (r *rawH2Client) do() error {
	id := r.id
	r.id += 2
	frames := r.ex.request
	if id == 1 {
		frames = r.ex.first
	}
	r.out = patchStream(r.out, frames, id)
	if _, err := r.c.Write(r.out); err != nil {
		return err
	}
	data := 0
	for {
		if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
			return err
		}
		n := int(r.hdr[0])<<16 | int(r.hdr[1])<<8 | int(r.hdr[2])
		if _, err := r.br.Discard(n); err != nil {
			return err
		}
		typ, flags := http2.FrameType(r.hdr[3]), http2.Flags(r.hdr[4])
		if typ == http2.FrameRSTStream || typ == http2.FrameGoAway {
			return errRawH2
		}
		if binary.BigEndian.Uint32(r.hdr[5:])&(1<<31-1) != id {
			continue
		}
		if typ == http2.FrameData {
			data += n
		}
		if (typ == http2.FrameHeaders || typ == http2.FrameData) && flags&http2.FlagDataEndStream != 0 {
			if data != r.ex.dataLen {
				return errRawH2
			}
			return nil
		}
	}
}

// h2RawProxy starts the upstream and a sluice with an h2c cluster in
// front of it, and returns a warmed client.
func h2RawProxy(tb testing.TB, ex h2Exchange) *rawH2Client {
	upAddr := startRawH2Upstream(tb, ex)
	// The gRPC tests' h2c route and cluster, without the access log (as
	// BenchmarkProxyHTTP1Raw: the log's allocations are not the path's).
	ts := startServer(tb, grpcConfig(upAddr)+"\n[access_log]\ndisabled = true\n")
	cl := newRawH2Client(tb, ts.ListenerAddr("public"), ex)
	for range 100 { // warm the pools, the HPACK tables and the upstream connection
		cl.roundTrip()
	}
	return cl
}

func benchH2Raw(b *testing.B, ex h2Exchange) {
	cl := h2RawProxy(b, ex)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cl.roundTrip()
	}
}

// BenchmarkProxyH2Raw: one h2c GET through the proxy to an h2c upstream.
func BenchmarkProxyH2Raw(b *testing.B) { benchH2Raw(b, h2Get) }

// BenchmarkProxyGRPCUnaryRaw: one gRPC unary call (request body,
// response trailers) through the proxy to an h2c upstream.
func BenchmarkProxyGRPCUnaryRaw(b *testing.B) { benchH2Raw(b, h2GRPCUnary) }

// TestProxyH2RawExchanges checks that the benchmarks' prepared frames are
// a real exchange through the proxy: each answers in full, many times in
// a row on one connection.
func TestProxyH2RawExchanges(t *testing.T) {
	for name, ex := range map[string]h2Exchange{"get": h2Get, "grpc unary": h2GRPCUnary} {
		t.Run(name, func(t *testing.T) {
			cl := h2RawProxy(t, ex)
			for range 200 {
				if err := cl.do(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// proxyH2RawAllocs is the allocations per h2 request the proxy is held to
// (issue: at most 4): none. The codec keeps a quiet stream's context for
// the connection's next stream, the proxy registers on it with Watch (no
// stop function), and the codec's own reading and writing, HPACK and the
// handler goroutine allocate nothing.
const proxyH2RawAllocs = 0

// TestProxyH2RawAllocs pins BenchmarkProxyH2Raw's allocations per request,
// so that a change that adds one shows here.
func TestProxyH2RawAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	cl := h2RawProxy(t, h2Get)
	if n := testing.AllocsPerRun(200, cl.roundTrip); n > proxyH2RawAllocs {
		t.Errorf("%v allocations per proxied h2 request, want at most %d", n, proxyH2RawAllocs)
	}
}
