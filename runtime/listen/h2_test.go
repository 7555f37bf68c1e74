package listen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	sluiceh2 "github.com/sluice-proxy/sluice/runtime/http2"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestRapidResetClosesConnection: a client that floods HEADERS and
// RST_STREAM pairs (CVE-2023-44487) gets GOAWAY ENHANCE_YOUR_CALM after
// about Envoy's threshold of premature resets, and its connection
// closed, over h2c (prior knowledge) and h2 (TLS, ALPN); a well-behaved
// client on another connection is served meanwhile.
func TestRapidResetClosesConnection(t *testing.T) {
	dir := t.TempDir()
	ca, err := mesh.NewCA("example.org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := mesh.ParseID("spiffe://example.org/ns/default/sa/server")
	if err := ca.IssueFiles(id, filepath.Join(dir, "server"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     config.Listener
		upgrade bool // h2c by an HTTP/1.1 Upgrade
	}{
		{"h2c", config.Listener{Name: "plain", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2c"}}, false},
		{"h2c upgrade", config.Listener{Name: "plain", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2c"}}, true},
		{"h2", config.Listener{Name: "tls", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2"},
			TLS: &config.TLS{Cert: filepath.Join(dir, "server.crt"), Key: filepath.Join(dir, "server.key")}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := stats.NewRegistry()
			h := streamFunc(func(s stream.ServerStream) { replyText(s, "ok") })
			l := startListener(t, tc.cfg, h, Guards{Stats: reg})
			addr := l.Addr().String()
			dial := func() net.Conn {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				if tc.cfg.TLS != nil {
					tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
					if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
						t.Fatalf("handshake: %v, ALPN %q", err, tc.ConnectionState().NegotiatedProtocol)
					}
					c = tc
				}
				t.Cleanup(func() { c.Close() })
				return c
			}

			// The attacker: HEADERS then RST_STREAM, as fast as it can.
			c := dial()
			scheme := "http"
			if tc.cfg.TLS != nil {
				scheme = "https"
			}
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", scheme}, {":authority", "x"}, {":path", "/"}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			var r io.Reader = c
			first := uint32(1)
			if tc.upgrade {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n\r\n")
				br := bufio.NewReader(c)
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("upgrade: %v %v", resp, err)
				}
				r, first = br, 3 // stream 1 is the upgrade request
			}
			c.Write([]byte(http2.ClientPreface))
			fr := http2.NewFramer(c, r)
			fr.WriteSettings()
			go func() {
				for id := first; id < 20000; id += 2 {
					if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}) != nil ||
						fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
						return
					}
				}
			}()

			// Meanwhile, a well-behaved client on its own connection.
			good := goodClient(t, tc.cfg.TLS != nil)
			served := make(chan error, 1)
			go func() {
				for i := 0; i < 20; i++ {
					resp, err := good.Get(scheme + "://" + addr + "/")
					if err != nil {
						served <- err
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.ProtoMajor != 2 || string(b) != "ok" {
						served <- io.ErrUnexpectedEOF
						return
					}
				}
				served <- nil
			}()

			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var goAway *http2.GoAwayFrame
			for goAway == nil {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("no GOAWAY before the connection ended: %v", err)
				}
				if g, ok := f.(*http2.GoAwayFrame); ok {
					goAway = g
				}
			}
			if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", goAway.ErrCode)
			}
			// Bounded: the server handled about DefaultPrematureResetStreams/2 pairs
			// (stream ids 1, 3, ...), not the 10,000 sent.
			if max := uint32(2*(sluiceh2.DefaultPrematureResetStreams/2+50) + 1); goAway.LastStreamID > max {
				t.Fatalf("GOAWAY after stream %d; want the flood stopped by stream %d", goAway.LastStreamID, max)
			}
			for {
				if _, err := fr.ReadFrame(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("the connection stays open after GOAWAY")
					}
					break
				}
			}
			if err := <-served; err != nil {
				t.Fatalf("the well-behaved client: %v", err)
			}
			if n := reg.Counter("sluice_downstream_rq_too_many_premature_resets_total", "", "listener", tc.cfg.Name).Value(); n != 1 {
				t.Errorf("sluice_downstream_rq_too_many_premature_resets_total = %d, want 1", n)
			}
		})
	}
}

func goodClient(t *testing.T, useTLS bool) *http.Client {
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	if !useTLS {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// rawH2C opens an h2c prior-knowledge connection to addr and sends the
// preface and an empty SETTINGS; the connection is closed with the test.
func rawH2C(t *testing.T, addr string) (net.Conn, *http2.Framer) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	return c, fr
}

func getBlock(t *testing.T, path string) []byte {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return block.Bytes()
}

// TestH2ListenerSettings: the listener's limits and window sizes are what
// its HTTP/2 connections announce: max_concurrent_streams, the header
// limit (max_header_bytes), initial_stream_window_size as
// SETTINGS_INITIAL_WINDOW_SIZE and initial_connection_window_size as the
// connection window the first WINDOW_UPDATE opens.
func TestH2ListenerSettings(t *testing.T) {
	cfg := config.Listener{Name: "w", Address: "127.0.0.1:0", Protocols: []string{"h2c"},
		MaxConcurrentStreams: 7, MaxHeaderBytes: 32 << 10,
		InitialStreamWindowSize: 1 << 20, InitialConnectionWindowSize: 4 << 20}
	l := startListener(t, cfg, streamFunc(func(s stream.ServerStream) { replyText(s, "ok") }), Guards{})
	_, fr := rawH2C(t, l.Addr().String())
	got := map[http2.SettingID]uint32{}
	var connWindow uint32
	for connWindow == 0 || len(got) == 0 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS and WINDOW_UPDATE: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				f.ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil })
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				connWindow = 65535 + f.Increment
			}
		}
	}
	for id, want := range map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 7,
		http2.SettingMaxHeaderListSize:    32 << 10,
		http2.SettingInitialWindowSize:    1 << 20,
	} {
		if got[id] != want {
			t.Errorf("%v = %d, want %d", id, got[id], want)
		}
	}
	if connWindow != 4<<20 {
		t.Errorf("connection window %d, want %d", connWindow, 4<<20)
	}
}

// TestH2ConnectionIDs: HTTP/2 streams carry the listener's connection id
// (what the access log and filters see as connection.id): the streams of
// one connection share it, another connection has its own, and a
// connection upgraded from HTTP/1.1 keeps the id its HTTP/1.1 requests had.
func TestH2ConnectionIDs(t *testing.T) {
	h := streamFunc(func(s stream.ServerStream) {
		replyText(s, fmt.Sprintf("%d %s", s.Connection().ID, s.Connection().Protocol))
	})
	l := startListener(t, config.Listener{Name: "ids", Address: "127.0.0.1:0", Protocols: []string{"http1", "h2c"}}, h, Guards{})
	addr := l.Addr().String()
	before := filter.NextConnectionID()

	// readBody reads the response of stream id.
	readBody := func(fr *http2.Framer, id uint32) string {
		var body strings.Builder
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("stream %d: %v", id, err)
			}
			if d, ok := f.(*http2.DataFrame); ok && d.StreamID == id {
				body.Write(d.Data())
				if d.StreamEnded() {
					return body.String()
				}
			}
		}
	}
	request := func(fr *http2.Framer, id uint32) string {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: getBlock(t, "/"), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		return readBody(fr, id)
	}

	// Prior knowledge: two streams, one id; a second connection, another.
	_, fr := rawH2C(t, addr)
	a1, a2 := request(fr, 1), request(fr, 3)
	if a1 != a2 || !strings.HasSuffix(a1, " HTTP/2") {
		t.Fatalf("streams of one connection: %q and %q", a1, a2)
	}
	_, fr2 := rawH2C(t, addr)
	if b := request(fr2, 1); b == a1 {
		t.Fatalf("two connections share the id %q", b)
	}

	// An HTTP/1.1 request, then an upgrade on the same connection.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	id1, _, _ := strings.Cut(string(b), " ")
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\n\r\n")
	if resp, err = http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, http2.ClientPreface)
	fr3 := http2.NewFramer(c, br)
	fr3.WriteSettings()
	if got, want := readBody(fr3, 1), id1+" HTTP/2"; got != want {
		t.Fatalf("upgraded stream 1: %q, want %q (the HTTP/1.1 requests' id)", got, want)
	}
	if got, want := request(fr3, 3), id1+" HTTP/2"; got != want {
		t.Fatalf("stream 3 after the upgrade: %q, want %q", got, want)
	}
	// Every protocol numbers from one counter (HTTP/1.1 had its own, so
	// its ids collided with HTTP/2's in access logs and properties).
	seen := map[string]bool{}
	for _, v := range []string{a1, request(fr2, 3), id1} {
		id, _, _ := strings.Cut(v, " ")
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil || n <= before || seen[id] {
			t.Fatalf("connection id %q: not a fresh number from the shared counter (taken before: %d, seen %v)", id, before, seen)
		}
		seen[id] = true
	}
}

// TestH2FloodCounted: a connection closed by a flood limit other than
// rapid reset (here Envoy's max_consecutive_inbound_frames_with_empty_payload:
// empty DATA frames) is counted per listener and reason.
func TestH2FloodCounted(t *testing.T) {
	reg := stats.NewRegistry()
	l := startListener(t, config.Listener{Name: "f", Address: "127.0.0.1:0", Protocols: []string{"h2c"}},
		streamFunc(func(s stream.ServerStream) { <-s.Context().Done() }), Guards{Stats: reg})
	_, fr := rawH2C(t, l.Addr().String())
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: getBlock(t, "/"), EndHeaders: true})
	for i := 0; i < 3; i++ {
		fr.WriteData(1, false, nil)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("GOAWAY %v, want PROTOCOL_ERROR", g.ErrCode)
			}
			break
		}
	}
	if n := reg.Counter("sluice_downstream_cx_http2_flood_total", "", "listener", "f", "reason", sluiceh2.FloodEmptyFrames).Value(); n != 1 {
		t.Errorf("sluice_downstream_cx_http2_flood_total{reason=%q} = %d, want 1", sluiceh2.FloodEmptyFrames, n)
	}
	if n := reg.Counter("sluice_downstream_rq_too_many_premature_resets_total", "", "listener", "f").Value(); n != 0 {
		t.Errorf("sluice_downstream_rq_too_many_premature_resets_total = %d, want 0", n)
	}
}

// TestH2IdleTimeout: an HTTP/2 connection that has had no stream for the
// listener's idle_timeout gets GOAWAY NO_ERROR and is closed; one with a
// stream in flight is not (the stream is answered first).
func TestH2IdleTimeout(t *testing.T) {
	release := make(chan struct{})
	h := streamFunc(func(s stream.ServerStream) {
		<-release
		replyText(s, "ok")
	})
	l := startListener(t, config.Listener{Name: "idle", Address: "127.0.0.1:0", Protocols: []string{"h2c"},
		IdleTimeout: config.Duration(50 * time.Millisecond)}, h, Guards{})
	// The stream stays open for several idle timeouts: no GOAWAY meanwhile.
	time.AfterFunc(300*time.Millisecond, func() { close(release) })
	for attempt := 1; ; attempt++ {
		_, fr := rawH2C(t, l.Addr().String())
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: getBlock(t, "/"), EndStream: true, EndHeaders: true})
		answered := false
		var goAway *http2.GoAwayFrame
		for goAway == nil {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no GOAWAY before the connection ended: %v", err)
			}
			if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 && d.StreamEnded() {
				answered = true
			}
			goAway, _ = f.(*http2.GoAwayFrame)
		}
		if goAway.LastStreamID == 0 && attempt < 5 {
			// A loaded machine took longer than the idle timeout between
			// the connection's start and its first HEADERS: that was an
			// idle connection. Again, on a new one.
			continue
		}
		if !answered {
			t.Fatalf("GOAWAY %v (last stream %d) while stream 1 was open", goAway.ErrCode, goAway.LastStreamID)
		}
		if goAway.ErrCode != http2.ErrCodeNo || goAway.LastStreamID != 1 {
			t.Fatalf("GOAWAY %v last stream %d, want NO_ERROR after stream 1", goAway.ErrCode, goAway.LastStreamID)
		}
		for {
			if _, err := fr.ReadFrame(); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("the connection stays open after GOAWAY")
				}
				return
			}
		}
	}
}
