package listen

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// The HTTP/2 rapid-reset guard (CVE-2023-44487). A client that opens
// streams and resets them at once costs the server a request each while
// it pays for two small frames, and never hits the concurrent-stream
// limit. Envoy closes such a connection once its premature resets (a
// stream reset by the client within a second of opening) pass a
// threshold; this guard does the same in front of x/net's HTTP/2 server,
// which has no hook for it: it reads the 9-byte frame headers of what the
// client sends, counts new streams (HEADERS) and premature RST_STREAMs,
// and past the threshold fails the connection's next read with
// ENHANCE_YOUR_CALM, which the server answers with a GOAWAY of that code
// from its own writer (so the frame cannot interleave with another) and
// then closes the connection. It moves with the HTTP/2 codec when sluice
// has its own.

// Envoy's heuristic (overload.premature_reset_total_stream_count 500,
// premature_reset_min_stream_lifetime_seconds 1): a connection is closed
// when half of its streams were reset prematurely, checked once it has
// had resetCheckStreams streams, and before that as soon as the premature
// resets alone reach half of resetCheckStreams.
const (
	resetCheckStreams   = 500
	prematureResetAge   = time.Second
	frameHeaderLen      = 9
	frameHeaders        = 0x1
	frameRSTStream      = 0x3
	recentStreamsWindow = 1024 // streams remembered for their open time; a power of two
)

// guarded is c behind a reset guard: the client's connection preface is
// let through, then its frame headers are scanned. A *tls.Conn keeps its
// TLS state visible to the HTTP/2 server (request.TLS, version checks).
func guarded(c net.Conn, closed *stats.Counter) net.Conn {
	g := &resetGuardConn{Conn: c, skip: len(http2Preface), closed: closed}
	if tc, ok := c.(*tls.Conn); ok {
		return &tlsResetGuardConn{g, tc}
	}
	return g
}

// h2cUpgrade switches an HTTP/1.1 connection to h2c when a request asks
// to (RFC 7540 section 3.2: "Upgrade: h2c", one HTTP2-Settings, both
// named in Connection) and serves it behind the reset guard, the request
// as stream 1. A request with a body is served as HTTP/1.1 instead (a
// server may ignore an upgrade), so that no body is buffered whole to
// replay it. The upgrade's own headers are removed either way: they are
// for this hop.
type h2cUpgrade struct {
	next   stream.Handler
	h2     http.Handler // next behind net/http, for x/net's server
	srv    *http.Server
	h2s    *http2.Server
	closed *stats.Counter
}

func (u *h2cUpgrade) ServeStream(ss stream.ServerStream) {
	h := ss.RequestHeaders()
	if !mapHasToken(h, "upgrade", "h2c") {
		u.next.ServeStream(ss)
		return
	}
	settings, ok := h2cSettings(h)
	for _, k := range []string{"connection", "upgrade", "http2-settings"} {
		h.Del(k)
	}
	if !ok || ss.RequestBodyLength() != 0 {
		u.next.ServeStream(ss)
		return
	}
	req, err := upgradeRequest(ss)
	if err != nil {
		u.next.ServeStream(ss)
		return
	}
	var head stream.HeaderMap
	head.Add(stream.Status, "101")
	head.Add("connection", "Upgrade")
	head.Add("upgrade", "h2c")
	if ss.WriteHeaders(&head, false) != nil {
		return
	}
	conn, early, err := ss.Upgrade()
	if err != nil {
		return
	}
	defer conn.Close()
	// What the client sent after the request is read first; the guard
	// sees it all, from the preface on.
	var c net.Conn = conn
	if len(early) > 0 {
		c = &earlyConn{Conn: conn, early: early}
	}
	g := &resetGuardConn{Conn: c, skip: len(http2Preface), closed: u.closed}
	u.h2s.ServeConn(g, &http2.ServeConnOpts{Context: ss.Context(), Handler: u.h2, BaseConfig: u.srv, UpgradeRequest: req, Settings: settings})
}

// earlyConn reads early, the bytes a codec had read past the request
// head, before the connection.
type earlyConn struct {
	net.Conn
	early []byte
}

func (c *earlyConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// upgradeRequest is the upgrading request as x/net's server takes it: it
// serves it as stream 1.
func upgradeRequest(ss stream.ServerStream) (*http.Request, error) {
	h := ss.RequestHeaders()
	method, _ := h.Get(stream.Method)
	target, _ := h.Get(stream.Path)
	authority, _ := h.Get(stream.Authority)
	u, err := url.ParseRequestURI(string(target))
	if err != nil {
		return nil, err
	}
	r := &http.Request{Method: string(method), URL: u, RequestURI: string(target), Host: string(authority),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Body: http.NoBody}
	for name, value := range h.All() {
		if len(name) > 0 && name[0] != ':' {
			r.Header.Add(string(name), string(value))
		}
	}
	if c := ss.Connection(); c.Remote != nil {
		r.RemoteAddr = c.Remote.String()
	}
	return r.WithContext(ss.Context()), nil
}

// mapHasToken says whether a comma-separated field of h holds token.
func mapHasToken(h *stream.HeaderMap, name, token string) bool {
	for v := range h.Values(name) {
		for _, t := range strings.Split(string(v), ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// h2cSettings returns the decoded HTTP2-Settings of an upgrade request,
// and whether the request is a valid one.
func h2cSettings(h *stream.HeaderMap) ([]byte, bool) {
	n := 0
	var v []byte
	for s := range h.Values("http2-settings") {
		v = s
		n++
	}
	if n != 1 || !mapHasToken(h, "connection", "upgrade") || !mapHasToken(h, "connection", "http2-settings") {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(string(v), "="))
	if err != nil || len(b)%6 != 0 {
		return nil, false
	}
	return b, true
}

// resetGuardConn parses the frame headers of what it reads; see above.
type resetGuardConn struct {
	net.Conn
	closed *stats.Counter

	skip    int // bytes of preface or frame payload still to pass
	hdr     [frameHeaderLen]byte
	hdrN    int
	tripped bool

	lastStream uint32
	streams    int
	premature  int
	// recent remembers when the latest streams opened, by stream id.
	recent [recentStreamsWindow]struct {
		id     uint32
		opened time.Time
	}
}

func (g *resetGuardConn) Read(p []byte) (int, error) {
	if g.tripped {
		return 0, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	n, err := g.Conn.Read(p)
	if n > 0 {
		if end, trip := g.scan(p[:n]); trip {
			g.tripped = true
			if g.closed != nil {
				g.closed.Inc()
			}
			// What follows the frame that tripped the guard is never
			// handed over: the next read fails.
			return end, nil
		}
	}
	return n, err
}

// scan walks the frame headers in b; when one trips the guard it returns
// the offset just past that frame (or b's end) and true.
func (g *resetGuardConn) scan(b []byte) (int, bool) {
	var now time.Time
	off := 0
	for off < len(b) {
		if g.skip > 0 {
			k := min(g.skip, len(b)-off)
			g.skip -= k
			off += k
			continue
		}
		k := copy(g.hdr[g.hdrN:], b[off:])
		g.hdrN += k
		off += k
		if g.hdrN < frameHeaderLen {
			break
		}
		g.hdrN = 0
		g.skip = int(g.hdr[0])<<16 | int(g.hdr[1])<<8 | int(g.hdr[2])
		typ := g.hdr[3]
		id := binary.BigEndian.Uint32(g.hdr[5:]) & 0x7fffffff
		if typ != frameHeaders && typ != frameRSTStream {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		if g.frame(typ, id, now) {
			return min(off+g.skip, len(b)), true
		}
	}
	return len(b), false
}

// frame counts one HEADERS or RST_STREAM frame and reports whether the
// connection is past the threshold.
func (g *resetGuardConn) frame(typ byte, id uint32, now time.Time) bool {
	slot := &g.recent[(id>>1)&(recentStreamsWindow-1)]
	switch {
	case typ == frameHeaders && id > g.lastStream:
		// A new stream (HEADERS on an open one are trailers).
		g.lastStream = id
		g.streams++
		slot.id, slot.opened = id, now
		return false
	case typ == frameRSTStream && slot.id == id && now.Sub(slot.opened) < prematureResetAge:
		g.premature++
		slot.id = 0 // one reset per stream counts
	default:
		return false
	}
	if g.streams < resetCheckStreams {
		return 2*g.premature >= resetCheckStreams
	}
	return 2*g.premature >= g.streams
}

// tlsResetGuardConn keeps the TLS state visible to the HTTP/2 server
// (request.TLS, and its TLS version checks).
type tlsResetGuardConn struct {
	*resetGuardConn
	tc *tls.Conn
}

func (c *tlsResetGuardConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }
