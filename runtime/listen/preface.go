package listen

import (
	"bytes"
	"io"
	"net"
	"time"

	"github.com/sluice-proxy/sluice/runtime/http1"
)

// http2Preface is the client connection preface of RFC 9113 section 3.4.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// prefaceListener closes plaintext connections that start like an HTTP/2
// preface but are not one (or, on an h2c-only listener, anything but the
// preface). net/http would read them as a malformed HTTP/1.1 request and
// answer 400, where RFC 9113 asks for the connection to close.
type prefaceListener struct {
	net.Listener
	h2Only bool
}

func (l prefaceListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	pc := &prefaceConn{Conn: c, h2Only: l.h2Only}
	pc.waiter, _ = c.(http1.ReadWaiter)
	return pc, nil
}

// prefaceConn checks the first bytes it reads; every read after that goes
// straight to the connection.
type prefaceConn struct {
	net.Conn
	waiter  http1.ReadWaiter // Conn's, when it can wait without a buffer
	h2Only  bool
	checked bool
	seen    []byte
}

func (c *prefaceConn) Read(p []byte) (int, error) {
	if !c.checked {
		return c.readFirst(p)
	}
	return c.Conn.Read(p)
}

// readFirst is Read until the check is over. Out of line: every read after
// the first few goes straight through, and Read stays a few instructions.
//
//go:noinline
func (c *prefaceConn) readFirst(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.seen = append(c.seen, p[:n]...)
	switch {
	case !c.h2Only && len(c.seen) >= 4 && !bytes.HasPrefix(c.seen, []byte("PRI ")):
		c.checked, c.seen = true, nil
	case len(c.seen) >= len(http2Preface):
		if !bytes.HasPrefix(c.seen, []byte(http2Preface)) {
			return 0, c.refuse()
		}
		c.checked, c.seen = true, nil
	case !bytes.HasPrefix([]byte(http2Preface), c.seen):
		return 0, c.refuse()
	}
	return n, err
}

// refuse closes the connection with a FIN rather than a reset: closing with
// unread bytes would make the kernel send RST, so what the client sent is
// drained (briefly, bounded) first.
func (c *prefaceConn) refuse() error {
	if tc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
		c.Conn.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(c.Conn, 64<<10))
	}
	c.Conn.Close()
	return net.ErrClosed
}

// WaitReadable passes the HTTP/1.1 server's wait for a request on
// (http1.ReadWaiter) once the preface check is over: prefaceConn keeps
// no read bytes of its own.
func (c *prefaceConn) WaitReadable() bool {
	return c.checked && c.waiter != nil && c.waiter.WaitReadable()
}

// WriteThrough lets the HTTP/1.1 server write to the connection itself
// (one writev for head and body): prefaceConn only looks at reads.
func (c *prefaceConn) WriteThrough() net.Conn { return c.Conn }
