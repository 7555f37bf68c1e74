package http2

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzConn is a connection whose client sends fixed bytes, then EOF; what
// the server writes is dropped.
type fuzzConn struct{ r *bytes.Reader }

func (c fuzzConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c fuzzConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c fuzzConn) Close() error                     { return nil }
func (c fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzSeeds are client byte streams (after the preface): a GET, a POST
// with DATA and trailers, a block split over CONTINUATION, flow control,
// settings, pings, resets, and a few broken frames.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	frames := func(write func(fr *http2.Framer, block func(...string) []byte)) {
		var buf, hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		block := func(kv ...string) []byte {
			hbuf.Reset()
			for i := 0; i+1 < len(kv); i += 2 {
				enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return append([]byte(nil), hbuf.Bytes()...)
		}
		fr := http2.NewFramer(&buf, nil)
		fr.AllowIllegalWrites = true
		write(fr, block)
		seeds = append(seeds, buf.Bytes())
	}
	get := []string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"}
	frames(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(get...), EndStream: true, EndHeaders: true})
		fr.WriteWindowUpdate(1, 100)
		fr.WriteWindowUpdate(0, 100)
		fr.WritePing(false, [8]byte{1})
	})
	frames(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(":method", "POST", ":scheme", "https", ":path", "/p", "content-length", "4"), EndHeaders: true})
		fr.WriteData(1, false, []byte("ab"))
		fr.WriteDataPadded(1, false, []byte("cd"), []byte{0, 0, 0})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("x-trailer", "t"), EndStream: true, EndHeaders: true})
		fr.WriteRSTStream(1, http2.ErrCodeCancel)
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	frames(func(fr *http2.Framer, block func(...string) []byte) {
		b := block(append(get, "cookie", "a=1", "cookie", "b=2")...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b[:3], Priority: http2.PriorityParam{StreamDep: 1, Weight: 9}})
		fr.WriteContinuation(3, false, b[3:5])
		fr.WriteContinuation(3, true, b[5:])
		fr.WritePriority(5, http2.PriorityParam{StreamDep: 5})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2, BlockFragment: block(get...), EndStream: true, EndHeaders: true})
	})
	frames(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteRawFrame(0x1, 0x4, 1, []byte{0xff, 0xff, 0xff}) // a broken HPACK block
		fr.WriteRawFrame(0x0, 0x8, 1, []byte{9})                // padding past the payload
		fr.WriteRawFrame(0x4, 0x0, 0, []byte{0, 4, 0xff, 0xff, 0xff, 0xff})
		fr.WriteRawFrame(0xfa, 0x0, 0, []byte("unknown"))
	})
	return seeds
}

// FuzzServeConn feeds arbitrary frames, after the client preface, to a
// connection: whatever comes, ServeConn returns (no panic, no hang) and
// every handler it started has returned.
func FuzzServeConn(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(clientPreface), data...)
		srv := &Server{GoAwayTimeout: time.Millisecond}
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(fuzzConn{bytes.NewReader(in)}, echo)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not return after the client's EOF")
		}
	})
}

var _ io.Reader = fuzzConn{}
