package http2

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestGracefulShutdown: Shutdown sends GOAWAY(NO_ERROR) naming the last
// stream accepted; that stream finishes, a newer one is refused, then the
// connection closes and Shutdown returns.
func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	srv := &Server{}
	ts := startServer(t, srv, handlerFunc(func(s stream.ServerStream) {
		<-release
		echo(s)
	}), nil)
	r := dialRaw(t, ts.addr())
	r.request(1, true, "/")
	// Stream 1 is running once a PING sent after it is answered.
	r.fr.WritePing(false, [8]byte{1})
	r.expect(func(f http2.Frame) bool { _, ok := f.(*http2.PingFrame); return ok })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	g := r.expectGoAway(http2.ErrCodeNo)
	if g.LastStreamID != 1 {
		t.Errorf("GOAWAY last stream %d, want 1", g.LastStreamID)
	}
	r.request(3, true, "/")
	r.expectRST(3, http2.ErrCodeRefusedStream)
	close(release)
	r.expectStatus(1, "200")
	// Until the end, no GOAWAY may raise the last stream id (RFC 9113 6.8).
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok && g.LastStreamID > 1 {
			t.Errorf("a later GOAWAY names stream %d", g.LastStreamID)
		}
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestResets: Reset maps the stream's reason to RST_STREAM codes (CANCEL
// after a complete response is NO_ERROR); a client
// RST_STREAM ends the handler's context and fails its reads; a handler
// that returns without a response resets its stream (INTERNAL_ERROR), and
// one that panics does too, with its panic logged, without taking the
// connection down.
func TestResets(t *testing.T) {
	reasons := map[string]stream.ResetReason{"/cancel": stream.ResetCancel, "/internal": stream.ResetInternal, "/protocol": stream.ResetProtocol, "/refused": stream.ResetRefused}
	readErr := make(chan error, 1)
	ctxDone := make(chan error, 1)
	core, logs := observer.New(zap.ErrorLevel)
	ts := startServer(t, &Server{Log: zap.New(core)}, handlerFunc(func(s stream.ServerStream) {
		p, _ := s.RequestHeaders().Get(":path")
		switch path := string(p); path {
		case "/client-reset":
			ctx := s.Context()
			_, err := s.ReadBody(make([]byte, 10))
			readErr <- err
			<-ctx.Done()
			ctxDone <- ctx.Err()
		case "/no-status":
			var h stream.HeaderMap
			h.Add("x-a", "1")
			if s.WriteHeaders(&h, true) == nil {
				t.Error("a head without :status was written")
			}
		case "/complete-then-cancel":
			var h stream.HeaderMap
			h.Add(":status", "200")
			s.WriteHeaders(&h, false)
			s.WriteBody([]byte("ok"), true)
			s.Reset(stream.ResetCancel)
		case "/return":
		case "/panic":
			panic("handler bug")
		default:
			var h stream.HeaderMap
			h.Add(":status", "200")
			s.WriteHeaders(&h, false)
			s.Reset(reasons[path])
			if err := s.WriteBody([]byte("x"), true); err == nil {
				t.Error("WriteBody after Reset succeeded")
			}
		}
	}), nil)
	r := dialRaw(t, ts.addr())
	id := uint32(1)
	for path, code := range map[string]http2.ErrCode{"/cancel": http2.ErrCodeCancel, "/internal": http2.ErrCodeInternal, "/protocol": http2.ErrCodeProtocol, "/refused": http2.ErrCodeRefusedStream, "/return": http2.ErrCodeInternal, "/no-status": http2.ErrCodeInternal, "/panic": http2.ErrCodeInternal} {
		r.request(id, true, path)
		r.expectRST(id, code)
		id += 2
	}
	// A complete response, then the rest of the request is not wanted:
	// RST_STREAM NO_ERROR after the END_STREAM (RFC 9113 section 8.1).
	r.request(id, false, "/complete-then-cancel")
	r.expectStatus(id, "200")
	r.expectRST(id, http2.ErrCodeNo)
	id += 2
	r.request(id, false, "/client-reset")
	r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	if err := <-readErr; err == nil || errors.Is(err, io.EOF) {
		t.Errorf("ReadBody after the client's reset: %v", err)
	}
	if err := <-ctxDone; err == nil {
		t.Error("context not ended")
	}
	id += 2
	r.request(id, true, "/cancel")
	r.expectRST(id, http2.ErrCodeCancel) // the connection still serves
	panics := logs.FilterMessage("http2 handler panic").All()
	if len(panics) != 1 || panics[0].ContextMap()["panic"] != "handler bug" || !strings.Contains(panics[0].ContextMap()["stack"].(string), "TestResets") {
		t.Errorf("the handler's panic logged as %v, want once with its value and stack", panics)
	}
}

// countingConn counts the Write calls made on a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// serveCounted serves one connection with h, its writes counted, and
// dials it.
func serveCounted(t *testing.T, h stream.Handler) (*rawConn, *countingConn) {
	t.Helper()
	conns := make(chan *countingConn, 1)
	ts := startServerWith(t, &Server{}, h, nil, func(c net.Conn) net.Conn {
		cc := &countingConn{Conn: c}
		conns <- cc
		return cc
	})
	return dialRaw(t, ts.addr()), <-conns
}

// TestWritesBatched: a response's HEADERS and DATA leave in one system
// call, not one per frame.
func TestWritesBatched(t *testing.T) {
	r, cc := serveCounted(t, echo)
	// The handshake is over once a PING is answered.
	r.fr.WritePing(false, [8]byte{})
	r.expect(func(f http2.Frame) bool { _, ok := f.(*http2.PingFrame); return ok })
	before := cc.writes.Load()
	r.request(1, true, "/")
	r.expectStatus(1, "200")
	r.expect(func(f http2.Frame) bool { d, ok := f.(*http2.DataFrame); return ok && d.StreamEnded() })
	if n := cc.writes.Load() - before; n != 1 {
		t.Errorf("a response took %d writes, want 1", n)
	}
}

// TestWindowUpdatesBatched: a 2 MiB upload gets its window back in a
// handful of WINDOW_UPDATEs (one per half window consumed), not one per
// DATA frame; the client never waits on the 64 KiB default window.
func TestWindowUpdatesBatched(t *testing.T) {
	ts := startServer(t, &Server{}, echo, nil)
	r := dialRaw(t, ts.addr())
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "POST", ":scheme", "http", ":path", "/up"), EndHeaders: true})
	const total, frame = 2 << 20, 16 << 10
	updates, sent := 0, 0
	streamWin, connWin := int64(DefaultStreamWindow), int64(initialWindow) // the connection's grows once the server's first WINDOW_UPDATE arrives
	chunk := make([]byte, frame)
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for sent < total {
		for sent < total && streamWin >= frame && connWin >= frame {
			r.fr.WriteData(1, sent+frame == total, chunk)
			sent += frame
			streamWin -= frame
			connWin -= frame
		}
		if sent == total {
			break
		}
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if wu, ok := f.(*http2.WindowUpdateFrame); ok {
			updates++
			if wu.StreamID == 0 {
				connWin += int64(wu.Increment)
			} else {
				streamWin += int64(wu.Increment)
			}
		}
	}
	// 2 MiB: 1 for the connection's initial grant, then one per 128 KiB
	// read on the stream and one per 512 KiB on the connection.
	if updates > 1+total/(DefaultStreamWindow/2)+total/(DefaultConnWindow/2) {
		t.Errorf("%d WINDOW_UPDATEs for %d DATA frames", updates, total/frame)
	}
	r.expectStatus(1, "200")
}

// TestH2CUpgrade: an HTTP/1.1 request with "Upgrade: h2c" that the
// listener answers 101 becomes stream 1 of an HTTP/2 connection, served
// by ServeUpgraded; the client's preface follows.
func TestH2CUpgrade(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 2)
	h := handlerFunc(func(s stream.ServerStream) {
		var names string
		for n := range s.RequestHeaders().All() {
			names += string(n) + " "
		}
		seen <- names
		echo(s)
	})
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		// What the HTTP/1.1 listener will do: read the request, answer 101.
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			done <- err
			return
		}
		settings, _ := base64.RawURLEncoding.DecodeString(req.Header.Get("HTTP2-Settings"))
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
		var hm stream.HeaderMap
		hm.Add(":method", req.Method)
		hm.Add(":scheme", "http")
		hm.Add(":authority", req.Host)
		hm.Add(":path", req.URL.RequestURI())
		for k, vs := range req.Header {
			for _, v := range vs {
				hm.Add(k, v)
			}
		}
		done <- (&Server{}).ServeUpgraded(&bufferedConn{Conn: c, r: br}, h, settings, &hm)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var set [6]byte
	binary.BigEndian.PutUint16(set[:], uint16(http2.SettingInitialWindowSize))
	binary.BigEndian.PutUint32(set[2:], 1<<20)
	io.WriteString(c, "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: "+base64.RawURLEncoding.EncodeToString(set[:])+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	r := &rawConn{t: t, c: c, fr: http2.NewFramer(c, br)}
	r.fr.ReadMetaHeaders = newDecoder()
	io.WriteString(c, clientPreface)
	r.fr.WriteSettings()
	r.expectStatus(1, "200")
	d := r.expect(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
	if string(d.Data()) != "hello" {
		t.Errorf("body %q", d.Data())
	}
	if names := <-seen; names != ":method :scheme :authority :path " {
		t.Errorf("stream 1's fields: %q (the upgrade's own must go)", names)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeUpgraded: %v", err)
	}
}

// bufferedConn reads what a bufio.Reader already holds first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestEarlyResponse: a response complete before its request (a handler
// that answers without reading the body) asks the client to stop with
// RST_STREAM NO_ERROR (RFC 9113 8.1); the DATA and trailers the client
// had in flight are ignored and the connection goes on.
func TestEarlyResponse(t *testing.T) {
	ts := startServer(t, &Server{}, okHandler, nil)
	r := dialRaw(t, ts.addr())
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "POST", ":scheme", "http", ":path", "/"), EndHeaders: true})
	r.expectStatus(1, "200")
	r.expectRST(1, http2.ErrCodeNo)
	r.fr.WriteData(1, false, []byte("late"))
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("x-trailer", "1"), EndStream: true, EndHeaders: true})
	r.request(3, true, "/")
	f := r.expect(func(f http2.Frame) bool {
		switch f.(type) {
		case *http2.MetaHeadersFrame, *http2.RSTStreamFrame, *http2.GoAwayFrame:
			return true
		}
		return false
	})
	if h, ok := f.(*http2.MetaHeadersFrame); !ok || h.StreamID != 3 {
		t.Fatalf("after late frames on a finished stream: %v", f)
	}
}

// TestHeadersOnClosedStream: HEADERS on a stream whose request and
// response are both complete is a connection error STREAM_CLOSED (RFC
// 9113 5.1), also while its handler has not returned yet.
func TestHeadersOnClosedStream(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	ts := startServer(t, &Server{}, handlerFunc(func(s stream.ServerStream) {
		okHandler(s)
		<-hold
	}), nil)
	r := dialRaw(t, ts.addr())
	r.request(1, true, "/")
	r.expect(func(f http2.Frame) bool { d, ok := f.(*http2.DataFrame); return ok && d.StreamEnded() })
	r.request(1, true, "/")
	r.expectGoAway(http2.ErrCodeStreamClosed)
}

// TestResetFromAnotherGoroutine: Reset may come from another goroutine (a
// stream timeout) and ends a WriteBody blocked on a client that grants no
// window; ReadBody may run beside the handler too (a body pump).
func TestResetFromAnotherGoroutine(t *testing.T) {
	writeErr := make(chan error, 1)
	pumped := make(chan string, 1)
	ts := startServer(t, &Server{}, handlerFunc(func(s stream.ServerStream) {
		go func() { // the body pump
			b, _ := io.ReadAll(readerOf(s))
			pumped <- string(b)
		}()
		if got := <-pumped; got != "body" {
			t.Errorf("pumped %q", got)
		}
		var h stream.HeaderMap
		h.Add(":status", "200")
		s.WriteHeaders(&h, false)
		blocked := make(chan struct{})
		go func() { // the stream timeout
			<-blocked
			s.Reset(stream.ResetCancel)
		}()
		close(blocked)
		writeErr <- s.WriteBody(make([]byte, 1<<20), true) // the window is 0: it blocks until the reset
	}), nil)
	r := dialRaw(t, ts.addr())
	r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(":method", "POST", ":scheme", "http", ":path", "/"), EndHeaders: true})
	r.fr.WriteData(1, true, []byte("body"))
	r.expectRST(1, http2.ErrCodeCancel)
	if err := <-writeErr; err == nil {
		t.Error("WriteBody returned no error after Reset")
	}
}

// TestIdleTimeout: a connection without streams for IdleTimeout is
// drained (GOAWAY NO_ERROR naming the last stream served) and closed;
// while a stream is open it is not.
func TestIdleTimeout(t *testing.T) {
	release := make(chan struct{})
	// The idle timer runs from the connection's start: it must outlast
	// the client's SETTINGS round trip before its first HEADERS on a busy
	// machine (20 ms did not).
	ts := startServer(t, &Server{IdleTimeout: 200 * time.Millisecond}, handlerFunc(func(s stream.ServerStream) {
		<-release
		okHandler(s)
	}), nil)
	r := dialRaw(t, ts.addr())
	r.request(1, true, "/")
	// Longer than the idle timeout with stream 1 open: PINGs still answered.
	for i := range 5 {
		r.fr.WritePing(false, [8]byte{byte(i)})
		r.expect(func(f http2.Frame) bool { _, ok := f.(*http2.PingFrame); return ok })
		time.Sleep(60 * time.Millisecond)
	}
	close(release)
	r.expectStatus(1, "200")
	if g := r.expectGoAway(http2.ErrCodeNo); g.LastStreamID != 1 {
		t.Errorf("GOAWAY names stream %d", g.LastStreamID)
	}
	r.expectClosed()
}

// goroutineID is the running goroutine's number, from its stack header.
func goroutineID() string {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	return s[:strings.IndexByte(s, ' ')]
}

// TestHandlerGoroutinesReused: streams one after another run on the
// handler goroutines of earlier streams (a new goroutine per stream costs
// an allocation), and those goroutines end once idle for a while.
func TestHandlerGoroutinesReused(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]int{}
	ts := startServer(t, &Server{workerIdle: 200 * time.Millisecond}, handlerFunc(func(s stream.ServerStream) {
		mu.Lock()
		ids[goroutineID()]++
		mu.Unlock()
		okHandler(s)
	}), nil)
	before := runtime.NumGoroutine()
	g := newRawGetter(t, ts.addr())
	const requests = 200
	for range requests {
		g.get()
	}
	mu.Lock()
	n := len(ids)
	mu.Unlock()
	// One goroutine serves them all unless the next request comes before
	// the last handler's goroutine is back waiting: a few, more on a busy
	// machine that preempts a handler there, but far from one a stream.
	if n > requests/10 {
		t.Fatalf("%d requests in a row ran on %d goroutines", requests, n)
	}
	// The connection's reader and writer stay; the idle workers go.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before the requests, %d long after them", before, runtime.NumGoroutine())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClientThatStopsReading: a client that opens windows for a large
// response and then stops reading fills the socket's buffers and blocks
// the connection's writer; once a write has waited WriteTimeout the
// connection closes and the handler's writes fail, rather than the
// stream and connection staying held forever.
func TestClientThatStopsReading(t *testing.T) {
	done := make(chan error, 1)
	chunk := make([]byte, 64<<10)
	ts := startServer(t, &Server{WriteTimeout: 300 * time.Millisecond}, handlerFunc(func(s stream.ServerStream) {
		var h stream.HeaderMap
		h.Add(":status", "200")
		err := s.WriteHeaders(&h, false)
		for i := 0; err == nil && i < 4096; i++ { // 256 MiB: more than loopback buffers hold
			err = s.WriteBody(chunk, false)
		}
		done <- err
	}), nil)
	r := dialRaw(t, ts.addr())
	r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow})
	r.fr.WriteWindowUpdate(0, maxWindow-initialWindow)
	r.request(1, true, "/big")
	// Never read again.
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the handler wrote 256 MiB to a client that reads nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler's writes still block 20 s after the client stopped reading")
	}
}

// TestStreamContextAfterFunc: a stream's Context has the AfterFunc method
// the context package looks for, so contexts derived from it start no
// goroutine to watch it (a hundred context.AfterFunc registrations leave
// the goroutine count where it was); a registered function runs once the
// client resets the stream, a stopped one does not, and the context ends
// with context.Canceled.
func TestStreamContextAfterFunc(t *testing.T) {
	ran := make(chan struct{})
	result := make(chan string, 1)
	ts := startServer(t, &Server{}, handlerFunc(func(s stream.ServerStream) {
		ctx := s.Context()
		before := runtime.NumGoroutine()
		var stops []func() bool
		for range 100 {
			stops = append(stops, context.AfterFunc(ctx, func() { t.Error("a stopped function ran") }))
		}
		grew := runtime.NumGoroutine() - before
		for _, stop := range stops {
			if !stop() {
				t.Error("stop did not stop a registered function")
			}
		}
		context.AfterFunc(ctx, func() { close(ran) })
		if grew > 0 {
			result <- fmt.Sprintf("100 registrations started %d goroutines", grew)
		} else {
			result <- ""
		}
		<-ctx.Done()
		if ctx.Err() != context.Canceled {
			t.Errorf("Err after the reset: %v", ctx.Err())
		}
	}), nil)
	r := dialRaw(t, ts.addr())
	r.request(1, false, "/")
	if msg := <-result; msg != "" {
		t.Error(msg)
	}
	r.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the function registered on the stream's context did not run after the reset")
	}
}

// TestStreamContextAllocs: a handler that registers a function on its
// stream's context through its AfterFunc method and stops it, as the
// connection manager does, costs the stop function only on a warm
// connection: the context is the one an earlier stream left quiet, and
// no Done channel is made unless asked for.
func TestStreamContextAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	nop := func() {}
	h := handlerFunc(func(s stream.ServerStream) {
		stop := s.Context().(interface{ AfterFunc(func()) func() bool }).AfterFunc(nop)
		okHandler(s)
		stop()
	})
	if n := requestAllocs(t, dialServer(t, startServer(t, &Server{}, h, nil))); n > 1 {
		t.Errorf("%.1f allocations a request, want at most 1", n)
	}
}

// TestStreamContextReusedWhenQuiet: a stream's context that ended quiet
// (its registration stopped, as the connection manager does) serves the
// connection's next stream, not ended; one whose Done channel was taken
// ends with its stream and is not reused, so whoever waits on it sees
// its stream's end.
func TestStreamContextReusedWhenQuiet(t *testing.T) {
	ctxs := make(chan context.Context, 3)
	kept := make(chan (<-chan struct{}), 1)
	ts := startServer(t, &Server{}, handlerFunc(func(s stream.ServerStream) {
		path, _ := s.RequestHeaders().Get(stream.Path)
		switch string(path) {
		case "/kept":
			kept <- s.Context().Done()
		case "/quiet":
			stop := s.Context().(interface{ AfterFunc(func()) func() bool }).AfterFunc(func() {})
			stop()
		case "/next":
			// The quiet stream's handler has returned; its context goes
			// back to the connection just after.
			sc := s.(*serverStream).sc
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				sc.mu.Lock()
				n := len(sc.freeCtxs)
				sc.mu.Unlock()
				if n > 0 || time.Now().After(deadline) {
					break
				}
			}
			if err := s.Context().Err(); err != nil {
				t.Errorf("a reused context starts ended: %v", err)
			}
		}
		ctxs <- s.Context()
		okHandler(s)
	}), nil)
	r := dialRaw(t, ts.addr())
	r.request(1, true, "/kept")
	r.expectStatus(1, "200")
	select {
	case <-<-kept:
	case <-time.After(10 * time.Second):
		t.Fatal("a context whose Done channel was taken did not end with its stream")
	}
	r.request(3, true, "/quiet")
	r.expectStatus(3, "200")
	r.request(5, true, "/next")
	r.expectStatus(5, "200")
	first, quiet, next := <-ctxs, <-ctxs, <-ctxs
	if next != quiet {
		t.Error("the quiet stream's context was not reused by the next stream")
	}
	if next == first {
		t.Error("a context whose Done channel was taken was reused")
	}
}
