package http2

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// rawConn is a misbehaving client: frames written by hand with x/net's
// Framer, responses read back with their header blocks decoded.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

// dialRaw connects, sends the preface and empty SETTINGS, and reads the
// server's SETTINGS (acknowledging them).
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	return dialRawWith(t, &net.Dialer{}, addr)
}

// dialRawWith is dialRaw through d (socket options set before connect).
func dialRawWith(t testing.TB, d *net.Dialer, addr string) *rawConn {
	t.Helper()
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{t: t, c: c, fr: http2.NewFramer(c, c)}
	r.fr.ReadMetaHeaders = newDecoder()
	r.fr.MaxHeaderListSize = 1 << 20
	r.enc = hpack.NewEncoder(&r.hbuf)
	if _, err := io.WriteString(c, clientPreface); err != nil {
		t.Fatal(err)
	}
	r.fr.WriteSettings()
	r.expect(func(f http2.Frame) bool {
		s, ok := f.(*http2.SettingsFrame)
		return ok && !s.IsAck()
	})
	r.fr.WriteSettingsAck()
	return r
}

// block is the HPACK encoding of name/value pairs.
func (r *rawConn) block(kv ...string) []byte {
	r.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		r.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), r.hbuf.Bytes()...)
}

// request opens stream id with a GET of path (and extra fields).
func (r *rawConn) request(id uint32, end bool, path string, extra ...string) {
	r.t.Helper()
	fields := append([]string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", path}, extra...)
	err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(fields...), EndStream: end, EndHeaders: true})
	if err != nil {
		r.t.Fatal(err)
	}
}

// expect reads frames until match accepts one (within 10 s) and returns
// it; the connection's end fails the test.
func (r *rawConn) expect(match func(http2.Frame) bool) http2.Frame {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("reading frames: %v", err)
		}
		if match(f) {
			return f
		}
	}
}

func (r *rawConn) expectGoAway(code http2.ErrCode) *http2.GoAwayFrame {
	r.t.Helper()
	g := r.expect(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if g.ErrCode != code {
		r.t.Fatalf("GOAWAY %v, want %v", g.ErrCode, code)
	}
	return g
}

func (r *rawConn) expectRST(id uint32, code http2.ErrCode) {
	r.t.Helper()
	f := r.expect(func(f http2.Frame) bool {
		_, rst := f.(*http2.RSTStreamFrame)
		_, ga := f.(*http2.GoAwayFrame)
		return (rst || ga) && f.Header().StreamID == id || ga
	})
	rst, ok := f.(*http2.RSTStreamFrame)
	if !ok || rst.ErrCode != code {
		r.t.Fatalf("got %v, want RST_STREAM %v on stream %d", f, code, id)
	}
}

// expectStatus reads the response head of stream id.
func (r *rawConn) expectStatus(id uint32, status string) {
	r.t.Helper()
	f := r.expect(func(f http2.Frame) bool {
		_, h := f.(*http2.MetaHeadersFrame)
		_, rst := f.(*http2.RSTStreamFrame)
		_, ga := f.(*http2.GoAwayFrame)
		return (h || rst) && f.Header().StreamID == id || ga
	})
	h, ok := f.(*http2.MetaHeadersFrame)
	if !ok || h.PseudoValue("status") != status {
		r.t.Fatalf("got %v, want :status %s on stream %d", f, status, id)
	}
}

// expectClosed reads until the server closes the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, r.c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		r.t.Fatal("the server did not close the connection")
	}
}

// TestMalformedRequests: requests RFC 9113 calls malformed are refused
// with RST_STREAM PROTOCOL_ERROR before any handler sees them (not a 400,
// as Go's server answers some), and the connection goes on serving.
func TestMalformedRequests(t *testing.T) {
	called := make(chan string, 16)
	ts := startServer(t, &Server{}, handlerFunc(func(s stream.ServerStream) {
		p, _ := s.RequestHeaders().Get(":path")
		called <- string(p)
		echo(s)
	}), nil)
	for _, tc := range []struct {
		name   string
		fields []string
	}{
		{"connection-specific field", []string{":method", "GET", ":scheme", "http", ":path", "/", "connection", "keep-alive"}},
		{"transfer-encoding", []string{":method", "GET", ":scheme", "http", ":path", "/", "transfer-encoding", "chunked"}},
		{"te other than trailers", []string{":method", "GET", ":scheme", "http", ":path", "/", "te", "gzip"}},
		{"upper-case name", []string{":method", "GET", ":scheme", "http", ":path", "/", "X-Upper", "1"}},
		{"no :path", []string{":method", "GET", ":scheme", "http"}},
		{"empty :path", []string{":method", "GET", ":scheme", "http", ":path", ""}},
		{"no :method", []string{":scheme", "http", ":path", "/"}},
		{"repeated :method", []string{":method", "GET", ":method", "GET", ":scheme", "http", ":path", "/"}},
		{"pseudo after regular", []string{":method", "GET", ":scheme", "http", "x-a", "1", ":path", "/"}},
		{":status in a request", []string{":method", "GET", ":scheme", "http", ":path", "/", ":status", "200"}},
		{"unknown pseudo", []string{":method", "GET", ":scheme", "http", ":path", "/", ":foo", "x"}},
		{"CONNECT with :path", []string{":method", "CONNECT", ":authority", "x:1", ":path", "/", ":scheme", "http"}},
		{"two content-lengths", []string{":method", "POST", ":scheme", "http", ":path", "/", "content-length", "1", "content-length", "2"}},
		{"NUL in a value", []string{":method", "GET", ":scheme", "http", ":path", "/", "x-a", "a\x00b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, ts.addr())
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(tc.fields...), EndStream: true, EndHeaders: true})
			r.expectRST(1, http2.ErrCodeProtocol)
			r.request(3, true, "/ok")
			r.expectStatus(3, "200")
			if p := <-called; p != "/ok" {
				t.Errorf("handler saw %q", p)
			}
		})
	}
	// content-length against the DATA that came.
	for _, tc := range []struct {
		name string
		data []string
	}{{"shorter", []string{"12345"}}, {"longer", []string{"12345", "67890", "x"}}} {
		t.Run("content-length 10, DATA "+tc.name, func(t *testing.T) {
			r := dialRaw(t, ts.addr())
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "POST", ":scheme", "http", ":path", "/cl", "content-length", "10"), EndHeaders: true})
			for i, d := range tc.data {
				r.fr.WriteData(1, i == len(tc.data)-1, []byte(d))
			}
			r.expectRST(1, http2.ErrCodeProtocol)
		})
	}
	for {
		select {
		case p := <-called:
			if p != "/cl" {
				t.Errorf("a malformed request reached the handler: %q", p)
			}
		default:
			return
		}
	}
}

func newDecoder() *hpack.Decoder { return hpack.NewDecoder(4096, nil) }

// TestBadHeadersFrames: a HEADERS frame the codec cannot take apart is a
// connection error with RFC 9113's code, sent as GOAWAY: padding longer
// than the payload (6.2: PROTOCOL_ERROR; the block could not be decoded,
// so the HPACK state would be lost with a stream error), fields missing
// from a frame too short for them (4.2: FRAME_SIZE_ERROR), stream 0, and
// a block interrupted by another frame (6.10).
func TestBadHeadersFrames(t *testing.T) {
	ts := startServer(t, &Server{}, echo, nil)
	for _, tc := range []struct {
		name  string
		write func(r *rawConn)
		code  http2.ErrCode
	}{
		{"padding past the payload", func(r *rawConn) {
			block := r.block(":method", "GET", ":scheme", "http", ":path", "/")
			payload := append([]byte{byte(len(block) + 1)}, block...)
			r.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream|http2.FlagHeadersPadded, 1, payload)
		}, http2.ErrCodeProtocol},
		{"padded, no pad length", func(r *rawConn) {
			r.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPadded, 1, nil)
		}, http2.ErrCodeFrameSize},
		{"priority cut short", func(r *rawConn) {
			r.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPriority, 1, []byte{0, 0, 0})
		}, http2.ErrCodeFrameSize},
		{"stream 0", func(r *rawConn) {
			r.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 0, r.block(":method", "GET", ":scheme", "http", ":path", "/"))
		}, http2.ErrCodeProtocol},
		{"block interrupted", func(r *rawConn) {
			r.fr.WriteRawFrame(http2.FrameHeaders, 0, 1, r.block(":method", "GET", ":scheme", "http"))
			r.fr.WritePing(false, [8]byte{})
		}, http2.ErrCodeProtocol},
		{"CONTINUATION alone", func(r *rawConn) {
			r.fr.WriteRawFrame(http2.FrameContinuation, http2.FlagHeadersEndHeaders, 1, r.block(":path", "/"))
		}, http2.ErrCodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, ts.addr())
			tc.write(r)
			r.expectGoAway(tc.code)
			r.expectClosed()
		})
	}
}

// TestResponseBodyMatchesContentLength: a response body longer or
// shorter than the content-length its head declared is not sent as a
// complete response (RFC 9113 8.1.1 makes it malformed): the stream is
// reset with INTERNAL_ERROR and the handler's write fails. A HEAD's or a
// 304's content-length describes a body they do not carry, and a body of
// the declared length goes through.
func TestResponseBodyMatchesContentLength(t *testing.T) {
	writeErr := make(chan error, 1)
	ts := startServer(t, &Server{}, handlerFunc(func(s stream.ServerStream) {
		path, _ := s.RequestHeaders().Get(":path")
		var h stream.HeaderMap
		h.Add(":status", "200")
		h.Add("content-length", "5")
		var err error
		switch string(path) {
		case "/long":
			if err = s.WriteHeaders(&h, false); err == nil {
				err = s.WriteBody([]byte("hello world"), true)
			}
		case "/short":
			if err = s.WriteHeaders(&h, false); err == nil {
				err = s.WriteBody([]byte("hel"), true)
			}
		case "/short-trailers":
			if err = s.WriteHeaders(&h, false); err == nil {
				if err = s.WriteBody([]byte("hel"), false); err == nil {
					var tr stream.HeaderMap
					tr.Add("x-t", "1")
					err = s.WriteTrailers(&tr)
				}
			}
		case "/none":
			err = s.WriteHeaders(&h, true)
		case "/304":
			h.Set(":status", "304")
			err = s.WriteHeaders(&h, true)
		default: // HEAD, and /exact
			m, _ := s.RequestHeaders().Get(":method")
			if err = s.WriteHeaders(&h, string(m) == "HEAD"); err == nil && string(m) != "HEAD" {
				err = s.WriteBody([]byte("hel"), false)
				if err == nil {
					err = s.WriteBody([]byte("lo"), true)
				}
			}
		}
		writeErr <- err
	}), nil)
	r := dialRaw(t, ts.addr())
	id := uint32(1)
	for _, path := range []string{"/long", "/short", "/short-trailers", "/none"} {
		r.request(id, true, path)
		r.expectRST(id, http2.ErrCodeInternal)
		if err := <-writeErr; !errors.Is(err, errBodyLength) {
			t.Errorf("%s: the handler's write returned %v", path, err)
		}
		id += 2
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/exact"}, {"HEAD", "/"}, {"GET", "/304"}} {
		err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(":method", tc.method, ":scheme", "http", ":authority", "x", ":path", tc.path), EndStream: true, EndHeaders: true})
		if err != nil {
			t.Fatal(err)
		}
		f := r.expect(func(f http2.Frame) bool {
			_, rst := f.(*http2.RSTStreamFrame)
			return f.Header().StreamID == id && (rst || f.Header().Flags.Has(http2.FlagDataEndStream))
		})
		if _, rst := f.(*http2.RSTStreamFrame); rst {
			t.Errorf("%s %s: reset", tc.method, tc.path)
		}
		if err := <-writeErr; err != nil {
			t.Errorf("%s %s: the handler's write returned %v", tc.method, tc.path, err)
		}
		id += 2
	}
}
