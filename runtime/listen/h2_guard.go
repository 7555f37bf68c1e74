package listen

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/runtime/stats"
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
	next   http.Handler
	srv    *http.Server
	h2s    *http2.Server
	closed *stats.Counter
}

func (u *h2cUpgrade) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "h2c") {
		u.next.ServeHTTP(w, r)
		return
	}
	settings, ok := h2cSettings(r.Header)
	for _, k := range []string{"Connection", "Upgrade", "Http2-Settings"} {
		delete(r.Header, k)
	}
	if !ok || r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		u.next.ServeHTTP(w, r)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		u.next.ServeHTTP(w, r)
		return
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if rw.Flush() != nil {
		return
	}
	// What the client sent after the request, already buffered, is read
	// first; the guard sees it all, from the preface on.
	g := &resetGuardConn{Conn: &peekedConn{Conn: conn, r: rw.Reader}, skip: len(http2Preface), closed: u.closed}
	u.h2s.ServeConn(g, &http2.ServeConnOpts{Context: r.Context(), Handler: u.next, BaseConfig: u.srv, UpgradeRequest: r, Settings: settings})
}

// h2cSettings returns the decoded HTTP2-Settings of an upgrade request,
// and whether the request is a valid one.
func h2cSettings(h http.Header) ([]byte, bool) {
	conn := h["Connection"]
	vs := h["Http2-Settings"]
	if len(vs) != 1 || !httpguts.HeaderValuesContainsToken(conn, "upgrade") || !httpguts.HeaderValuesContainsToken(conn, "http2-settings") {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(vs[0], "="))
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
