package http2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawPeer is a scripted HTTP/2 server on a loopback socket: it reads the
// client's preface, sends its SETTINGS, then runs script on the framer,
// to send what a well-behaved server would not.
type rawPeer struct {
	ln   net.Listener
	done chan error
	mu   sync.Mutex
	conn net.Conn
}

func startRawPeer(t testing.TB, settings []http2.Setting, script func(p *peerConn) error) *rawPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := &rawPeer{ln: ln, done: make(chan error, 1)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			rp.done <- err
			return
		}
		rp.mu.Lock()
		rp.conn = c
		rp.mu.Unlock()
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var pre [len(clientPreface)]byte
		if _, err := io.ReadFull(c, pre[:]); err != nil || string(pre[:]) != clientPreface {
			rp.done <- errors.New("no client preface")
			return
		}
		p := &peerConn{c: c, fr: http2.NewFramer(c, c)}
		p.enc = hpack.NewEncoder(&p.buf)
		p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		if err := p.fr.WriteSettings(settings...); err != nil {
			rp.done <- err
			return
		}
		rp.done <- script(p)
	}()
	t.Cleanup(func() {
		ln.Close()
		rp.mu.Lock()
		if rp.conn != nil {
			rp.conn.Close()
		}
		rp.mu.Unlock()
	})
	return rp
}

func (rp *rawPeer) dial(t testing.TB) *ClientConn {
	t.Helper()
	return rp.dialWith(t, ClientOptions{})
}

func (rp *rawPeer) dialWith(t testing.TB, opts ClientOptions) *ClientConn {
	t.Helper()
	c, err := net.Dial("tcp", rp.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := NewClientConn(c, opts)
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cc.WaitSettings(ctx); err != nil {
		t.Fatal(err)
	}
	return cc
}

// openGET opens a GET stream with no body, released when the test ends.
func openGET(t testing.TB, ctx context.Context, cc *ClientConn, path string) *ClientStream {
	t.Helper()
	s, _, err := cc.Open(ctx, reqHead("GET", path), -1, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Release)
	return s
}

// wait is the script's verdict.
func (rp *rawPeer) wait(t testing.TB) {
	t.Helper()
	select {
	case err := <-rp.done:
		if err != nil {
			t.Fatal("peer:", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("peer script did not end")
	}
}

type peerConn struct {
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

// next reads the client's frames until one that is not SETTINGS or
// WINDOW_UPDATE (those are acknowledged or skipped).
func (p *peerConn) next() (http2.Frame, error) {
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				p.fr.WriteSettingsAck()
			}
			continue
		case *http2.WindowUpdateFrame, *http2.PingFrame:
			continue
		}
		return f, nil
	}
}

// drain reads (and skips) the client's frames until it closes.
func (p *peerConn) drain() error {
	for {
		if _, err := p.next(); err != nil {
			return nil
		}
	}
}

// sync sends a PING and reads up to its ACK: the client has handled
// every frame sent before it (it reads in order).
func (p *peerConn) sync() error {
	p.fr.WritePing(false, [8]byte{'s', 'y', 'n', 'c'})
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return err
		}
		if pf, ok := f.(*http2.PingFrame); ok && pf.IsAck() {
			return nil
		}
	}
}

// request reads up to a request's HEADERS and returns its stream id.
func (p *peerConn) request() (uint32, error) {
	f, err := p.next()
	for err == nil {
		if _, ok := f.(*http2.RSTStreamFrame); !ok {
			break
		}
		f, err = p.next()
	}
	if err != nil {
		return 0, err
	}
	h, ok := f.(*http2.MetaHeadersFrame)
	if !ok {
		return 0, errors.New("expected HEADERS, got " + f.Header().Type.String())
	}
	return h.StreamID, nil
}

func (p *peerConn) headers(id uint32, end bool, fields ...string) error {
	p.buf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.buf.Bytes(), EndHeaders: true, EndStream: end})
}

// TestClientServerResets: a server's RST_STREAM reaches the stream as an
// http2.StreamError with the server's code, before or after the head;
// REFUSED_STREAM is told apart (the pool retries it elsewhere); the
// connection goes on serving.
func TestClientServerResets(t *testing.T) {
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		id, err := p.request()
		if err != nil {
			return err
		}
		p.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		id, err = p.request()
		if err != nil {
			return err
		}
		p.headers(id, false, ":status", "200")
		p.fr.WriteData(id, false, []byte("part"))
		p.fr.WriteRSTStream(id, http2.ErrCodeInternal)
		id, err = p.request()
		if err != nil {
			return err
		}
		p.headers(id, false, ":status", "204")
		p.fr.WriteData(id, true, nil)
		_, err = p.next() // the client's close
		if err == io.EOF {
			err = nil
		}
		return err
	})
	cc := rp.dial(t)
	ctx := context.Background()
	_, _, _, _, err := roundTrip(ctx, cc, reqHead("GET", "/"), nil, nil)
	var se http2.StreamError
	if !errors.As(err, &se) || se.Code != http2.ErrCodeRefusedStream {
		t.Fatalf("refused stream: %v", err)
	}
	_, _, body, _, err := roundTrip(ctx, cc, reqHead("GET", "/"), nil, nil)
	if !errors.As(err, &se) || se.Code != http2.ErrCodeInternal || string(body) != "part" {
		t.Fatalf("reset mid-body: %q %v", body, err)
	}
	status, _, _, _, err := roundTrip(ctx, cc, reqHead("GET", "/"), nil, nil)
	if err != nil || status != 204 {
		t.Fatalf("after the resets: %d %v", status, err)
	}
	cc.Close()
	rp.wait(t)
}

// TestClientCancelSendsReset: a canceled request's context resets its
// stream with RST_STREAM CANCEL, and the owner's wait ends with the
// context's error.
func TestClientCancelSendsReset(t *testing.T) {
	got := make(chan http2.ErrCode, 1)
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		id, err := p.request()
		if err != nil {
			return err
		}
		f, err := p.next()
		if err != nil {
			return err
		}
		rst, ok := f.(*http2.RSTStreamFrame)
		if !ok || rst.StreamID != id {
			return errors.New("expected RST_STREAM, got " + f.Header().String())
		}
		got <- rst.ErrCode
		return nil
	})
	cc := rp.dial(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := openGET(t, ctx, cc, "/slow")
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := s.AwaitHead(); !errors.Is(err, context.Canceled) {
		t.Fatalf("AwaitHead after cancel: %v", err)
	}
	rp.wait(t)
	if code := <-got; code != http2.ErrCodeCancel {
		t.Fatalf("reset code %v, want CANCEL", code)
	}
}

// TestClientGoAwayMidFlight: a GOAWAY naming stream 1 as the last fails
// stream 3 at once with a GoAwayError (never processed: safe to retry),
// lets stream 1 finish, refuses new streams, and closes the connection
// after stream 1.
func TestClientGoAwayMidFlight(t *testing.T) {
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		a, err := p.request()
		if err != nil {
			return err
		}
		if _, err := p.request(); err != nil {
			return err
		}
		p.fr.WriteGoAway(a, http2.ErrCodeNo, nil)
		time.Sleep(20 * time.Millisecond)
		p.headers(a, false, ":status", "200")
		p.fr.WriteData(a, true, []byte("one"))
		return p.drain()
	})
	cc := rp.dial(t)
	ctx := context.Background()
	s1 := openGET(t, ctx, cc, "/1")
	s3 := openGET(t, ctx, cc, "/3")
	var ga http2.GoAwayError
	if err := s3.AwaitHead(); !errors.As(err, &ga) || ga.LastStreamID != 1 {
		t.Fatalf("stream 3: %v", err)
	}
	if _, _, err := cc.Open(ctx, reqHead("GET", "/5"), -1, nil, true); !errors.Is(err, ErrConnBusy) {
		t.Fatalf("new stream after GOAWAY: %v", err)
	}
	if err := s1.AwaitHead(); err != nil {
		t.Fatal(err)
	}
	if body, err := io.ReadAll(s1); err != nil || string(body) != "one" {
		t.Fatalf("stream 1: %q %v", body, err)
	}
	select {
	case <-cc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after its last stream")
	}
	rp.wait(t)
}

// TestClientServerCloses: a server that closes mid-body fails the read
// with io.ErrUnexpectedEOF (what the pool classifies as a reset) after
// the bytes that came, and every other stream with it.
func TestClientServerCloses(t *testing.T) {
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		a, err := p.request()
		if err != nil {
			return err
		}
		if _, err := p.request(); err != nil {
			return err
		}
		p.headers(a, false, ":status", "200", "content-length", "100")
		p.fr.WriteData(a, false, []byte("half"))
		return p.c.Close()
	})
	cc := rp.dial(t)
	ctx := context.Background()
	s1 := openGET(t, ctx, cc, "/1")
	s3 := openGET(t, ctx, cc, "/3")
	if err := s1.AwaitHead(); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(s1)
	if string(body) != "half" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("body %q, err %v", body, err)
	}
	if err := s3.AwaitHead(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("other stream: %v", err)
	}
	rp.wait(t)
}

// TestClientEarlyResponse: a server that answers before reading the
// request body (a 413) and resets the stream with NO_ERROR gets no more
// of it: the blocked Write ends without an error, the response reads
// whole (RFC 9113 8.1).
func TestClientEarlyResponse(t *testing.T) {
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		id, err := p.request()
		if err != nil {
			return err
		}
		p.headers(id, false, ":status", "413")
		p.fr.WriteData(id, true, []byte("too big"))
		p.fr.WriteRSTStream(id, http2.ErrCodeNo)
		return p.drain()
	})
	cc := rp.dial(t)
	s, _, err := cc.Open(context.Background(), reqHead("POST", "/upload"), -1, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	wrote := make(chan error, 1)
	go func() {
		// Far past the server's 64 KiB window: only the reset ends it.
		_, err := s.Write(make([]byte, 4<<20))
		if err == nil {
			err = s.CloseSend(nil)
		}
		wrote <- err
	}()
	if err := s.AwaitHead(); err != nil || s.Status() != 413 {
		t.Fatalf("head: %d %v", s.Status(), err)
	}
	if body, err := io.ReadAll(s); err != nil || string(body) != "too big" {
		t.Fatalf("body %q %v", body, err)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("Write after the server's NO_ERROR reset: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write still blocked after the server's reset")
	}
	if !s.Done() {
		t.Fatal("stream not done")
	}
}

// TestClientPingsSilentPeer: a peer that goes silent (reads, never
// answers) gets a PING after ReadIdleTimeout and the connection closes
// when PingTimeout passes without the answer; its streams fail.
func TestClientPingsSilentPeer(t *testing.T) {
	pinged := make(chan struct{})
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				return nil
			}
			if pf, ok := f.(*http2.PingFrame); ok && !pf.IsAck() {
				select {
				case <-pinged:
				default:
					close(pinged)
				}
			}
		}
	})
	c, err := net.Dial("tcp", rp.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := NewClientConn(c, ClientOptions{ReadIdleTimeout: 20 * time.Millisecond, PingTimeout: 20 * time.Millisecond})
	defer cc.Close()
	s := openGET(t, context.Background(), cc, "/")
	select {
	case <-cc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection to a silent peer still open")
	}
	if err := s.AwaitHead(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("stream on the dead connection: %v", err)
	}
	rp.wait(t) // the peer has read all up to the close
	select {
	case <-pinged:
	default:
		t.Fatal("no PING before the close")
	}
}

// TestClientDeadlineDuringSteadyBody: a response body that keeps coming
// ends with the request's deadline (and a RST_STREAM CANCEL), however
// busy the stream is.
func TestClientDeadlineDuringSteadyBody(t *testing.T) {
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		id, err := p.request()
		if err != nil {
			return err
		}
		p.headers(id, false, ":status", "200")
		// 200 KiB: within the stream's window, so only the deadline can
		// end the response early.
		chunk := make([]byte, 1024)
		for range 200 {
			if err := p.fr.WriteData(id, false, chunk); err != nil {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		return p.drain()
	})
	cc := rp.dial(t)
	// The head must come within the deadline on a busy machine too; the
	// body outlasts it (200 KiB is 3,200 of the reads below).
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	s := openGET(t, ctx, cc, "/stream")
	if err := s.AwaitHead(); err != nil {
		t.Fatal(err)
	}
	// Slower than the peer, so data is always waiting; bounded, so a
	// read that never ends fails the test rather than hangs it.
	buf := make([]byte, 64)
	var rerr error
	for i := 0; rerr == nil; i++ {
		if i == 3000 {
			t.Fatal("reads went on past the deadline")
		}
		_, rerr = s.Read(buf)
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(rerr, context.DeadlineExceeded) {
		t.Fatalf("read ended with %v, want the deadline", rerr)
	}
	cc.Close()
	rp.wait(t)
}

// TestClientControlFlood: a peer that sends PINGs without end and never
// reads the answers is cut off, its queued answers bounded, instead of
// growing the connection's buffer without limit.
func TestClientControlFlood(t *testing.T) {
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		var batch bytes.Buffer
		fr := http2.NewFramer(&batch, nil)
		for range 4096 {
			fr.WritePing(false, [8]byte{'f', 'l', 'o', 'o', 'd'})
		}
		for range 1000 { // up to 70 MiB, far past any socket buffer
			if _, err := p.c.Write(batch.Bytes()); err != nil {
				return nil // cut off
			}
		}
		return errors.New("the client took every PING")
	})
	cc := rp.dial(t)
	select {
	case <-cc.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("flooding peer not cut off")
	}
	if err := cc.Err(); !errors.Is(err, errControlFlood) {
		t.Fatalf("connection ended with %v", err)
	}
	rp.wait(t)
}

// TestClientFramesAfterEndStream: a HEADERS or DATA frame after the
// response ended, while the request body still goes out, resets the
// stream (STREAM_CLOSED) and stops the request body, but leaves the
// complete response the owner holds as it was: the whole body, no late
// "trailers".
func TestClientFramesAfterEndStream(t *testing.T) {
	for _, late := range []string{"headers", "data"} {
		t.Run(late, func(t *testing.T) {
			synced := make(chan struct{})
			rp := startRawPeer(t, nil, func(p *peerConn) error {
				id, err := p.request()
				if err != nil {
					return err
				}
				p.headers(id, false, ":status", "200")
				p.fr.WriteData(id, true, []byte("whole body"))
				if late == "headers" {
					p.headers(id, true, "x-late", "1")
				} else {
					p.fr.WriteData(id, true, []byte("late"))
				}
				if err := p.sync(); err != nil {
					return err
				}
				close(synced)
				return p.drain()
			})
			cc := rp.dial(t)
			s, _, err := cc.Open(context.Background(), reqHead("POST", "/"), -1, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Release()
			if err := s.AwaitHead(); err != nil || s.Status() != 200 {
				t.Fatalf("head: %d %v", s.Status(), err)
			}
			<-synced // the late frame was handled before any body is read
			if body, err := io.ReadAll(s); err != nil || string(body) != "whole body" {
				t.Fatalf("body %q %v", body, err)
			}
			if tr := s.Trailers(); tr != nil {
				t.Fatalf("late HEADERS taken as trailers: %v", tr)
			}
			if !s.Done() {
				t.Fatal("stream not done")
			}
			cc.Close()
			rp.wait(t)
		})
	}
}

// TestClientBodylessAnswersWithLength: HEAD and 304 answers carry a
// content-length but no body (END_STREAM on the head): they end cleanly.
func TestClientBodylessAnswersWithLength(t *testing.T) {
	rp := startRawPeer(t, nil, func(p *peerConn) error {
		for _, status := range []string{"200", "304"} {
			id, err := p.request()
			if err != nil {
				return err
			}
			p.headers(id, true, ":status", status, "content-length", "1234")
		}
		return p.drain()
	})
	cc := rp.dial(t)
	ctx := context.Background()
	for _, tc := range []struct{ method, want string }{{"HEAD", "200"}, {"GET", "304"}} {
		status, head, body, _, err := roundTrip(ctx, cc, reqHead(tc.method, "/"), nil, nil)
		if err != nil || fmt.Sprint(status) != tc.want || len(body) != 0 || get(head, "content-length") != "1234" {
			t.Fatalf("%s: %d %q %v", tc.method, status, body, err)
		}
	}
	cc.Close()
	rp.wait(t)
}

// TestClientGoAwayOnOwnClose: a connection the client closes itself
// (Close, retired after its last stream, idle past IdleTimeout) tells the
// peer with a GOAWAY NO_ERROR, Last-Stream-ID 0 (no stream is the
// peer's), before the socket closes.
func TestClientGoAwayOnOwnClose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    ClientOptions
		request bool // one request is answered first
		closeBy func(cc *ClientConn)
	}{
		{name: "Close", closeBy: func(cc *ClientConn) { cc.Close() }},
		{name: "retired", request: true, closeBy: func(cc *ClientConn) { cc.Retire() }},
		{name: "idle", request: true, opts: ClientOptions{IdleTimeout: 20 * time.Millisecond}, closeBy: func(*ClientConn) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := startRawPeer(t, nil, func(p *peerConn) error {
				if tc.request {
					id, err := p.request()
					if err != nil {
						return err
					}
					p.headers(id, true, ":status", "204")
				}
				f, err := p.next()
				if err != nil {
					return fmt.Errorf("the client closed without a GOAWAY: %v", err)
				}
				ga, ok := f.(*http2.GoAwayFrame)
				if !ok {
					return errors.New("expected GOAWAY, got " + f.Header().Type.String())
				}
				if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 0 {
					return fmt.Errorf("GOAWAY %v, last stream %d", ga.ErrCode, ga.LastStreamID)
				}
				if _, err := p.next(); err == nil {
					return errors.New("a frame after the GOAWAY")
				}
				return nil
			})
			cc := rp.dialWith(t, tc.opts)
			if tc.request {
				s, _, err := cc.Open(context.Background(), reqHead("GET", "/"), -1, nil, true)
				if err != nil {
					t.Fatal(err)
				}
				if tc.name == "retired" {
					tc.closeBy(cc) // retired with the stream in flight: closes after it
					tc.closeBy = func(*ClientConn) {}
				}
				if err := s.AwaitHead(); err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, s)
				s.Release()
			}
			tc.closeBy(cc)
			select {
			case <-cc.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the connection did not close")
			}
			if err := cc.Err(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Err %v", err)
			}
			rp.wait(t)
		})
	}
}

// TestClientRefusesHeaderListPastPeerLimit: a request whose header list
// (names, values and 32 a field, RFC 9113 6.5.2) is larger than the
// peer's SETTINGS_MAX_HEADER_LIST_SIZE fails in Open with
// ErrHeaderListTooLarge and sends nothing: no stream id is spent and the
// HPACK state stays the peer's, so the next request, exactly at the
// limit, goes out as stream 1 and decodes whole.
func TestClientRefusesHeaderListPastPeerLimit(t *testing.T) {
	const limit = 300
	// :method GET, :scheme http, :authority example.test, :path / and
	// the name x-big, each field 32 more.
	fixed := 5*32 + 7 + 3 + 7 + 4 + 10 + 12 + 5 + 1 + 5
	fits := strings.Repeat("f", limit-fixed)
	got := make(chan string, 1)
	rp := startRawPeer(t, []http2.Setting{{ID: http2.SettingMaxHeaderListSize, Val: limit}}, func(p *peerConn) error {
		f, err := p.next()
		if err != nil {
			return err
		}
		h, ok := f.(*http2.MetaHeadersFrame)
		if !ok {
			return errors.New("expected HEADERS, got " + f.Header().Type.String())
		}
		big := -1
		for _, hf := range h.RegularFields() {
			if hf.Name == "x-big" {
				big = len(hf.Value)
			}
		}
		got <- fmt.Sprintf("stream %d, x-big of %d bytes", h.StreamID, big)
		p.headers(h.StreamID, true, ":status", "204")
		return p.drain()
	})
	cc := rp.dial(t)
	ctx := context.Background()
	_, _, err := cc.Open(ctx, reqHead("GET", "/", "x-big", fits+"!"), -1, nil, true)
	if !errors.Is(err, ErrHeaderListTooLarge) {
		t.Fatalf("one byte past the peer's limit: %v", err)
	}
	s, _, err := cc.Open(ctx, reqHead("GET", "/", "x-big", fits), -1, nil, true)
	if err != nil {
		t.Fatalf("at the peer's limit: %v", err)
	}
	defer s.Release()
	if err := s.AwaitHead(); err != nil || s.Status() != 204 {
		t.Fatalf("request at the limit: status %d, %v", s.Status(), err)
	}
	if g, want := <-got, fmt.Sprintf("stream 1, x-big of %d bytes", len(fits)); g != want {
		t.Fatalf("the peer got %s, want %s", g, want)
	}
	cc.Close()
	rp.wait(t)
}
