package listen

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// permissiveListener serves mTLS and plain text on one port, as Istio's
// PeerAuthentication PERMISSIVE does: it looks at each connection's first
// byte, and a TLS handshake record (0x16) gets a *tls.Conn (so net/http
// handshakes it, negotiates h2 by ALPN and fills Request.TLS) while
// anything else is served as plain HTTP. The peek happens on its own
// goroutine per connection, bounded by timeout, so a silent client never
// holds up Accept.
type permissiveListener struct {
	net.Listener
	tls     *tls.Config
	timeout time.Duration

	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

func newPermissiveListener(ln net.Listener, cfg *tls.Config, timeout time.Duration) *permissiveListener {
	l := &permissiveListener{Listener: ln, tls: cfg, timeout: timeout, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *permissiveListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		go l.sniff(c)
	}
}

func (l *permissiveListener) sniff(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(l.timeout))
	br := bufio.NewReaderSize(c, 512)
	first, err := br.Peek(1)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	var out net.Conn = &peekedConn{Conn: c, r: br}
	if first[0] == 0x16 {
		out = tls.Server(out, l.tls)
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

func (l *permissiveListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err // later Accepts see it too
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *permissiveListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// peekedConn reads first what the sniffer buffered.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil
	}
	return c.Conn.Read(p)
}

// WaitReadable passes the HTTP/1.1 server's wait for a request on
// (http1.ReadWaiter) once the sniffed bytes are read.
func (c *peekedConn) WaitReadable() bool {
	if c.r != nil && c.r.Buffered() > 0 {
		return false
	}
	return waitReadable(c.Conn)
}

// WriteThrough lets the HTTP/1.1 server write to the connection itself
// (one writev for head and body): peekedConn only replays reads.
func (c *peekedConn) WriteThrough() net.Conn { return c.Conn }
