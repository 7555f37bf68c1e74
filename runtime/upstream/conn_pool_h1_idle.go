package upstream

import (
	"crypto/tls"
	"net"
)

// idlePeek checks an HTTP/1.1 connection between two responses: nothing
// may arrive there. An upstream that sends bytes after a response's framed
// end (extra bytes after a Content-Length body, a body on 204, 304 or a
// HEAD response, bytes written later while the connection idles) would
// otherwise have them read as the answer to the next request on the
// connection, another client's. Go's Transport and nginx close such
// connections; so do we.
//
// Two checks. When a response ends, the connection's read buffers must be
// empty (http1.ClientConn.Reusable, with peekTLS over TLS). When an idle
// connection is used again, the socket must have nothing to read: one
// non-blocking recv(MSG_PEEK) on unix, when it is handed out (quiet) or,
// for a request written in one piece on plain TCP, in the same poller
// step as the write and the wait for the answer (sendQuiet), which saves
// the read that would find no answer yet. Go's Transport instead keeps a
// read blocked on every idle connection, which costs a goroutine per
// connection and a hand-off per request; nginx's and Envoy's event loops
// watch idle connections for free, and see bytes that came before their
// last poll (ours sees all that came before the peek). A peek is one
// system call per reuse and no allocation, and it also notices a
// connection the upstream closed while idle (its FIN), so the request goes
// out on a fresh connection instead of failing on a stale one.
type idlePeek struct {
	tls  bool     // the socket carries TLS: tls.Conn buffers records of its own
	sock net.Conn // the socket under conn
	peekState
}

func (p *idlePeek) init(conn net.Conn) {
	sock, isTLS := socketOf(conn)
	p.tls, p.sock = isTLS, sock
	p.initPeek(sock)
}

// socketOf unwraps the connection the pool was given down to the socket.
func socketOf(conn net.Conn) (net.Conn, bool) {
	isTLS := false
	for {
		switch c := conn.(type) {
		case *tlsCountedConn:
			conn, isTLS = c.tc.NetConn(), true
		case *countedConn:
			conn = c.Conn
		case *tls.Conn:
			conn, isTLS = c.NetConn(), true
		default:
			return conn, isTLS
		}
	}
}
