package listen

import (
	"encoding/base64"
	"net"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/http2"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// h2cUpgrade switches an HTTP/1.1 connection to h2c when a request asks
// to (RFC 7540 section 3.2: "Upgrade: h2c", one HTTP2-Settings, both
// named in Connection) and serves it with the HTTP/2 codec, the request
// as stream 1. A request with a body is served as HTTP/1.1 instead (a
// server may ignore an upgrade), so that no body is buffered whole to
// replay it. The upgrade's own headers are removed either way: they are
// for this hop.
type h2cUpgrade struct {
	next stream.Handler
	h2   *http2.Server
}

func (u *h2cUpgrade) ServeStream(ss stream.ServerStream) {
	h := ss.RequestHeaders()
	if !h.Has("upgrade") {
		// Almost every request: one lookup, and the token scan below
		// (its iterator and closures) stays out of the request's path.
		u.next.ServeStream(ss)
		return
	}
	u.serveUpgrade(ss, h)
}

// serveUpgrade is ServeStream for a request with an Upgrade field.
func (u *h2cUpgrade) serveUpgrade(ss stream.ServerStream, h *stream.HeaderMap) {
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
	// The HTTP/1.1 stream and its maps are the codec's: stream 1 gets a
	// copy of the request head, and the connection keeps its id.
	var req stream.HeaderMap
	for name, value := range h.All() {
		req.Add(string(name), string(value))
	}
	id := ss.Connection().ID
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
	// What the client sent after the request is read first.
	u.h2.ServeUpgraded(&upgradedConn{Conn: conn, early: early, id: id}, u.next, settings, &req)
}

// upgradedConn is a connection switched from HTTP/1.1 to h2c: it reads
// early, the bytes the HTTP/1.1 codec had read past the request head,
// before the connection, and keeps the connection's id so that its
// HTTP/2 streams are logged as the same connection.
type upgradedConn struct {
	net.Conn
	early []byte
	id    uint64
}

func (c *upgradedConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
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
