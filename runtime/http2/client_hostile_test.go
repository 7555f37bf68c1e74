package http2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestClientHostileFrames: what a broken or hostile server sends fails
// the stream it concerns (RST_STREAM, the connection serves the next
// request) or, when it breaks the connection's state, the connection
// (GOAWAY with the RFC 9113 code); never more, never a panic.
func TestClientHostileFrames(t *testing.T) {
	tests := []struct {
		name     string
		send     func(p *peerConn, id uint32)
		goAway   http2.ErrCode // 0: a stream error, the connection lives
		wantText string        // in the request's error
		// lazy: the client reads no body (so grants no window) until the
		// client has handled all that was sent.
		lazy bool
	}{
		{name: "data before headers", send: func(p *peerConn, id uint32) {
			p.fr.WriteData(id, true, []byte("x"))
		}, wantText: "PROTOCOL_ERROR"},
		{name: "no status", send: func(p *peerConn, id uint32) {
			p.headers(id, true, "content-type", "text/plain")
		}, wantText: "without :status"},
		{name: "bad status", send: func(p *peerConn, id uint32) {
			p.headers(id, true, ":status", "2000")
		}, wantText: "bad :status"},
		{name: "request pseudo-header", send: func(p *peerConn, id uint32) {
			p.headers(id, true, ":status", "200", ":path", "/")
		}, wantText: "out of place"},
		{name: "upper-case name", send: func(p *peerConn, id uint32) {
			p.headers(id, true, ":status", "200", "X-Bad", "1")
		}, wantText: "invalid field name"},
		{name: "connection-specific field", send: func(p *peerConn, id uint32) {
			p.headers(id, true, ":status", "200", "transfer-encoding", "chunked")
		}, wantText: "connection-specific"},
		{name: "value with LF", send: func(p *peerConn, id uint32) {
			p.headers(id, true, ":status", "200", "x-a", "a\nb")
		}, wantText: "invalid field value"},
		{name: "content-length short", send: func(p *peerConn, id uint32) {
			p.headers(id, false, ":status", "200", "content-length", "10")
			p.fr.WriteData(id, true, []byte("abc"))
		}, wantText: "content-length"},
		{name: "content-length short before trailers", send: func(p *peerConn, id uint32) {
			p.headers(id, false, ":status", "200", "content-length", "10")
			p.fr.WriteData(id, false, []byte("abc"))
			p.headers(id, true, "grpc-status", "0")
		}, wantText: "content-length"},
		{name: "content-length long", send: func(p *peerConn, id uint32) {
			p.headers(id, false, ":status", "200", "content-length", "1")
			p.fr.WriteData(id, true, []byte("abc"))
		}, wantText: "content-length"},
		{name: "101 in HTTP/2", send: func(p *peerConn, id uint32) {
			p.headers(id, false, ":status", "101")
		}, wantText: "interim"},
		{name: "interim flood", send: func(p *peerConn, id uint32) {
			for range 11 {
				p.headers(id, false, ":status", "103")
			}
		}, wantText: "interim"},
		{name: "trailers without end", send: func(p *peerConn, id uint32) {
			p.headers(id, false, ":status", "200")
			p.headers(id, false, "grpc-status", "0")
		}, wantText: "trailers without END_STREAM"},
		{name: "data past the stream window", send: func(p *peerConn, id uint32) {
			p.headers(id, false, ":status", "200")
			chunk := make([]byte, defaultFrameSize)
			for range 256 << 10 / defaultFrameSize {
				p.fr.WriteData(id, false, chunk)
			}
			p.fr.WriteData(id, true, []byte("x"))
		}, wantText: "FLOW_CONTROL_ERROR", lazy: true},
		{name: "stream window overflow", send: func(p *peerConn, id uint32) {
			p.fr.WriteWindowUpdate(id, maxWindow)
		}, wantText: "FLOW_CONTROL_ERROR"},
		{name: "headers on an idle stream", send: func(p *peerConn, id uint32) {
			p.headers(id+100, true, ":status", "200")
		}, goAway: http2.ErrCodeProtocol},
		{name: "data on an idle stream", send: func(p *peerConn, id uint32) {
			p.fr.WriteData(id+100, true, []byte("x"))
		}, goAway: http2.ErrCodeProtocol},
		{name: "push promise", send: func(p *peerConn, id uint32) {
			p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: id, PromiseID: 2, BlockFragment: []byte{0x82}, EndHeaders: true})
		}, goAway: http2.ErrCodeProtocol},
		{name: "hpack garbage", send: func(p *peerConn, id uint32) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff}, EndHeaders: true})
		}, goAway: http2.ErrCodeCompression},
		{name: "connection window overflow", send: func(p *peerConn, id uint32) {
			p.fr.WriteWindowUpdate(0, maxWindow)
		}, goAway: http2.ErrCodeFlowControl},
		{name: "initial window too large", send: func(p *peerConn, id uint32) {
			p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
		}, goAway: http2.ErrCodeFlowControl},
		{name: "continuation flood", send: func(p *peerConn, id uint32) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x88}})
			junk := bytes.Repeat([]byte{0x88}, defaultFrameSize)
			for range (1<<20)/defaultFrameSize + 4 {
				if p.fr.WriteContinuation(id, false, junk) != nil {
					return
				}
			}
		}, goAway: http2.ErrCodeEnhanceYourCalm},
		{name: "interrupted header block", send: func(p *peerConn, id uint32) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x88}})
			p.fr.WriteData(id, true, nil)
		}, goAway: http2.ErrCodeProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotAway := make(chan http2.ErrCode, 1)
			sent := make(chan struct{})
			rp := startRawPeer(t, nil, func(p *peerConn) error {
				id, err := p.request()
				if err != nil {
					return err
				}
				tt.send(p, id)
				if tt.lazy {
					if err := p.sync(); err != nil {
						return err
					}
					close(sent)
				}
				if tt.goAway != 0 {
					for {
						f, err := p.next()
						if err != nil {
							return fmt.Errorf("no GOAWAY: %w", err)
						}
						if ga, ok := f.(*http2.GoAwayFrame); ok {
							gotAway <- ga.ErrCode
							return nil
						}
					}
				}
				id, err = p.request()
				if err != nil {
					return err
				}
				return p.headers(id, true, ":status", "200")
			})
			cc := rp.dial(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			if tt.lazy {
				s, _, oerr := cc.Open(ctx, reqHead("GET", "/"), -1, nil, true)
				if oerr != nil {
					t.Fatal(oerr)
				}
				<-sent
				if err = s.AwaitHead(); err == nil {
					_, err = io.ReadAll(s)
				}
				s.Release()
			} else {
				_, _, _, _, err = roundTrip(ctx, cc, reqHead("GET", "/"), nil, nil)
			}
			if err == nil {
				t.Fatal("the request succeeded")
			}
			if tt.goAway != 0 {
				rp.wait(t)
				if code := <-gotAway; code != tt.goAway {
					t.Fatalf("GOAWAY %v, want %v", code, tt.goAway)
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("request error %v, want one wrapping io.ErrUnexpectedEOF", err)
				}
				return
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("error %q, want %q in it", err, tt.wantText)
			}
			status, _, _, _, err := roundTrip(ctx, cc, reqHead("GET", "/"), nil, nil)
			if err != nil || status != 200 {
				t.Fatalf("next request on the connection: %d %v", status, err)
			}
			rp.wait(t)
		})
	}
}

// FuzzClientFrames: arbitrary bytes from a server after its SETTINGS,
// while one request waits on stream 1: the client ends the request (an
// answer or an error), never panics, and stops when the server closes.
func FuzzClientFrames(f *testing.F) {
	frames := func(write func(fr *http2.Framer, enc *hpack.Encoder, buf *bytes.Buffer)) []byte {
		var out, hb bytes.Buffer
		fr := http2.NewFramer(&out, nil)
		write(fr, hpack.NewEncoder(&hb), &hb)
		return out.Bytes()
	}
	head := func(enc *hpack.Encoder, buf *bytes.Buffer, fields ...string) []byte {
		buf.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return append([]byte(nil), buf.Bytes()...)
	}
	f.Add(frames(func(fr *http2.Framer, enc *hpack.Encoder, b *bytes.Buffer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head(enc, b, ":status", "200", "content-length", "5"), EndHeaders: true})
		fr.WriteData(1, true, []byte("hello"))
	}))
	f.Add(frames(func(fr *http2.Framer, enc *hpack.Encoder, b *bytes.Buffer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head(enc, b, ":status", "100"), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head(enc, b, ":status", "200"), EndHeaders: true})
		fr.WriteData(1, false, []byte("body"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head(enc, b, "grpc-status", "0"), EndHeaders: true, EndStream: true})
	}))
	f.Add(frames(func(fr *http2.Framer, enc *hpack.Encoder, b *bytes.Buffer) {
		blk := head(enc, b, ":status", "200", "x-long", strings.Repeat("v", 40))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:10]})
		fr.WriteContinuation(1, true, blk[10:])
		fr.WriteDataPadded(1, true, []byte("p"), make([]byte, 20))
	}))
	f.Add(frames(func(fr *http2.Framer, enc *hpack.Encoder, b *bytes.Buffer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10}, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 0})
		fr.WritePing(false, [8]byte{1})
		fr.WriteWindowUpdate(0, 100)
		fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
	}))
	f.Add(frames(func(fr *http2.Framer, enc *hpack.Encoder, b *bytes.Buffer) {
		fr.WriteGoAway(0, http2.ErrCodeEnhanceYourCalm, []byte("bye"))
	}))
	f.Add([]byte{0, 0, 1, 1, 5, 0, 0, 0, 1, 0xff})
	f.Add([]byte{0, 0, 0, 9, 4, 0, 0, 0, 1})

	// One listener for the whole run: one per input used up the
	// ephemeral ports within a minute of fuzzing ("bind: address already
	// in use").
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	f.Fuzz(func(t *testing.T, data []byte) { fuzzOne(t, ln, data) })
}

// fuzzOne is FuzzClientFrames on one input, through ln.
func fuzzOne(t *testing.T, ln net.Listener, data []byte) {
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// The dialed connection is in ln's backlog: this Accept takes it.
	sc, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c := sc
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var pre [len(clientPreface)]byte
		if _, err := io.ReadFull(c, pre[:]); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		fr.WriteSettings()
		// Up to the request's HEADERS, then the bytes.
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if _, ok := f.(*http2.HeadersFrame); ok {
				break
			}
		}
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, c)
	}()
	cc := NewClientConn(c, ClientOptions{})
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	roundTrip(ctx, cc, reqHead("GET", "/"), nil, nil)
	select {
	case <-cc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed after the server closed")
	}
	cc.Close()
	<-served
}
