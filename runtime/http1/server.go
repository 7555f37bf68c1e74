package http1

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/clock"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Server serves HTTP/1.1 on connections it is given: one goroutine per
// connection (the caller's), no goroutine per request, pooled buffers.
type Server struct {
	// StreamHandler serves each request as a stream.ServerStream (the
	// connection manager).
	StreamHandler stream.Handler
	Limits        Limits
	// ReadHeaderTimeout bounds a request head from its first byte (and a
	// new connection's first request); IdleTimeout bounds the wait for the
	// next request on a kept-alive connection.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// ConnContext derives a connection's context (requests' contexts are
	// it): the listener's per-connection facts go there.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// H2C, when set, takes a connection that starts with the HTTP/2
	// connection preface (prior-knowledge h2c); c replays what was read.
	H2C func(c net.Conn, ctx context.Context)
	// ConnectionID numbers a new connection (Envoy's connection.id, shared
	// with the listener's other protocols so numbers never collide); nil
	// numbers connections by this package's own counter.
	ConnectionID func() uint64
	Log          *zap.Logger

	mu    sync.Mutex
	conns map[*conn]struct{}
	// shutdown is read on every request without the lock; set under it.
	shutdown atomic.Bool
}

// ServeConn serves c until it closes, goes idle too long, is hijacked or
// handed to HTTP/2, or the server shuts down. tlsState is c's TLS state,
// nil for plain text. It closes c unless c was hijacked or handed over.
func (s *Server) ServeConn(c net.Conn, tlsState *tls.ConnectionState) {
	cn := &conn{srv: s, nc: c, wc: writeThrough(c), tls: tlsState}
	// The requests carry the connection's :scheme from the parser (see
	// Request.Scheme), as the serverStream's ConnectionInfo.Scheme.
	cn.req.Scheme = schemeHTTP
	if tlsState != nil {
		cn.req.Scheme = schemeHTTPS
	}
	if !s.track(cn, true) {
		c.Close()
		return
	}
	defer s.track(cn, false)
	cn.serve()
}

// Shutdown stops the server gracefully: idle connections close now,
// busy ones after the request in flight (answered with Connection:
// close). It returns when every connection is gone or ctx ends, and then
// closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true)
	for c := range s.conns {
		c.wakeIfIdle()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes every connection at once.
func (s *Server) Close() {
	s.mu.Lock()
	s.shutdown.Store(true)
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
}

func (s *Server) track(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.shutdown.Load() {
			return false
		}
		if s.conns == nil {
			s.conns = make(map[*conn]struct{})
		}
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	return true
}

func (s *Server) shuttingDown() bool { return s.shutdown.Load() }

func (s *Server) logger() *zap.Logger {
	if s.Log != nil {
		return s.Log
	}
	return zap.NewNop()
}

// conn is one connection's state, reused from request to request.
type conn struct {
	srv    *Server
	nc     net.Conn
	wc     net.Conn // nc, or what it wraps when writes pass through (writev)
	tls    *tls.ConnectionState
	ctx    context.Context
	cancel context.CancelFunc

	r      connReader
	waiter ReadWaiter // nil: the connection cannot wait without a buffer
	req    Request
	bd     bodyReader
	enc    encoder
	st     serverStream
	// continueFn is enc.sendContinue, bound once: a body's beforeRead.
	continueFn func()

	watch watch
	// idleUntil is the read deadline the wait for a request left set, on
	// the scale of clock.Mono, kept while a request without a
	// body is served so the next wait can often keep it too (see
	// waitDeadline); zero when the deadline is something else or none.
	idleUntil time.Duration
	// readDeadline: the conn's goroutine left a read deadline set.
	readDeadline bool
	idle         atomic.Bool // waiting for a request
	hijacked     bool
	handed       bool // given to HTTP/2
}

func (c *conn) wakeIfIdle() {
	if c.idle.Load() {
		c.nc.SetReadDeadline(time.Now())
	}
}

// setIdle marks the connection idle (or busy); false means the server is
// shutting down and an idle connection should end. Without a lock: the
// read deadline is set before idle is, and Shutdown sets shutdown before
// it looks at idle, so either this sees shutdown or Shutdown sees idle and
// moves the deadline after ours (Go's atomics are sequentially consistent).
func (c *conn) setIdle(idle bool) bool {
	c.idle.Store(idle)
	return !c.srv.shutdown.Load()
}

func (c *conn) serve() {
	s := c.srv
	ctx := context.Background()
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, c.nc)
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.r.init(c.nc)
	c.waiter, _ = c.nc.(ReadWaiter)
	c.enc.c = c
	c.continueFn = c.enc.sendContinue
	c.st.init(c)
	defer func() {
		c.cancel()
		c.endWatch()
		c.r.release()
		c.enc.release()
		if !c.hijacked && !c.handed {
			c.nc.Close()
		}
	}()

	first := true
	for {
		c.r.startRequest()
		if len(c.r.buffered()) == 0 {
			// An idle connection keeps only its read buffer: the write
			// buffers go back to the pool until the next request.
			c.enc.release()
			c.waitDeadline(first)
			if !c.setIdle(true) {
				return
			}
			if c.waiter != nil && !first {
				// Idle without a buffer: an idle connection then holds
				// none, and the request is read into one just given
				// back by another connection, still in the cache.
				c.r.release()
				if testHookIdle != nil {
					testHookIdle(c)
				}
				c.waiter.WaitReadable()
				c.r.startRequest() // takes a buffer again
			}
			err := c.r.fill(s.Limits.headerBytes())
			if !c.setIdle(false) || err != nil {
				return
			}
		} else {
			// A pipelined head: read without a deadline unless it does
			// not come whole (readRequest).
			c.clearReadDeadline()
		}
		if first && s.H2C != nil && c.sniffPreface() {
			return
		}
		first = false
		if !c.readRequest() {
			return
		}
		c.bd.reset(&c.r, &c.req, s.Limits)
		if c.idleUntil == 0 || !c.bd.Done() {
			// Nothing bounds the handler's reads of the body.
			c.clearReadDeadline()
		}
		c.enc.reset(&c.req)
		if c.req.Expect100 && !c.bd.Done() {
			c.bd.beforeRead = c.continueFn
		}
		if !c.serveStream() {
			return
		}
	}
}

// testHookIdle, when a test sets it, runs on a connection's goroutine as
// the connection starts to wait for its next request without a buffer.
var testHookIdle func(c *conn)

// waitDeadline bounds the wait for a request: read_header_timeout for a
// new connection's first, the idle timeout for the next ones. Setting a
// deadline costs a timer update in the poller, twice a request with the
// clearing after the head; instead the idle deadline is set an eighth of
// the timeout long and kept while it still allows the whole timeout, so a
// busy connection sets it about once every eighth of a timeout. A kept-
// alive connection thus closes between one and 9/8 idle timeouts after
// its last request. The deadline stays set through a request without a
// body: nothing else reads the connection then, except the watch, which
// clears it first.
func (c *conn) waitDeadline(first bool) {
	s := c.srv
	wait := s.IdleTimeout
	if first {
		wait = s.ReadHeaderTimeout
	}
	if wait <= 0 {
		c.clearReadDeadline()
		return
	}
	// The monotonic clock alone: time.Now reads the wall clock too, and
	// showed in profiles at once a request.
	now := clock.Mono()
	if c.idleUntil != 0 && c.idleUntil >= now+wait {
		return // still allows the whole timeout
	}
	if !first {
		wait += wait / 8
	}
	// The same reading: the deadline is wait from it.
	c.setReadDeadline(clock.TimeOf(now + wait))
	c.idleUntil = now + wait
}

// setReadDeadline sets a read deadline: one other than the kept idle
// deadline, which is forgotten, unless waitDeadline sets it.
func (c *conn) setReadDeadline(t time.Time) {
	c.idleUntil = 0
	c.readDeadline = true
	c.nc.SetReadDeadline(t)
}

// clearReadDeadline removes the read deadline the conn's goroutine set,
// if any.
func (c *conn) clearReadDeadline() {
	c.idleUntil = 0
	if c.readDeadline {
		c.readDeadline = false
		c.nc.SetReadDeadline(time.Time{})
	}
}

const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// sniffPreface hands the connection to HTTP/2 when it opens with the
// prior-knowledge preface.
func (c *conn) sniffPreface() bool {
	for {
		b := c.r.buffered()
		n := min(len(b), len(preface))
		if !bytes.Equal(b[:n], []byte(preface[:n])) {
			return false
		}
		if n == len(preface) {
			break
		}
		if c.r.fill(len(preface)) != nil {
			return false
		}
	}
	c.nc.SetReadDeadline(time.Time{})
	replay := append([]byte(nil), c.r.buffered()...)
	c.handed = true
	c.srv.track(c, false)
	c.srv.H2C(&replayConn{Conn: c.nc, buf: replay}, c.ctx)
	return true
}

// readRequest parses the next head, reading as needed. A refused head is
// answered here and ends the connection.
func (c *conn) readRequest() bool {
	lim := c.srv.Limits
	// The head is parsed again only once a new line has come: a client
	// trickling bytes costs a scan of what it sent, not one per read.
	scanned := -1
	for {
		buf := c.r.buffered()
		if scanned < 0 || bytes.IndexByte(buf[scanned:], '\n') >= 0 {
			n, err := ParseRequest(buf, &c.req, lim)
			if err == nil {
				c.r.consume(n)
				return true
			}
			if err != errNeedMore {
				c.refuse(err)
				return false
			}
		} else if len(buf) > lim.headerBytes() {
			c.refuse(refuse(http.StatusRequestHeaderFieldsTooLarge, "request head too large"))
			return false
		}
		if scanned < 0 && c.srv.ReadHeaderTimeout > 0 {
			// The head did not come whole: it has read_header_timeout
			// from now (most heads arrive in one read and skip this).
			c.setReadDeadline(clock.Now().Add(c.srv.ReadHeaderTimeout))
		}
		scanned = len(buf)
		if ferr := c.r.fill(lim.headerBytes() + 4); ferr != nil {
			if ferr == io.ErrShortBuffer {
				c.refuse(refuse(http.StatusRequestHeaderFieldsTooLarge, "request head too large"))
			}
			return false
		}
	}
}

// refuse answers a request the codec refused and closes the connection
// (RFC 9112: after a framing error, what follows cannot be trusted).
func (c *conn) refuse(err error) {
	var e *Error
	if !errors.As(err, &e) {
		return
	}
	if ce := c.srv.logger().Check(zap.DebugLevel, "http1 request refused"); ce != nil {
		ce.Write(zap.Stringer("remote", c.nc.RemoteAddr()), zap.Int("status", e.Status), zap.String("reason", e.Reason))
	}
	if e == errNotHTTP && c.srv.H2C != nil {
		// The port speaks h2c too, and these bytes are neither HTTP/1.x
		// nor the HTTP/2 preface: RFC 9113 section 3.4 makes an invalid
		// preface a connection error, so the connection closes without an
		// HTTP/1.1 answer the peer would not read (h2spec 3.5/2).
		c.nc.Close()
		return
	}
	body := statusBody(e.Status)
	b := AppendStatusLine(nil, e.Status)
	b = AppendField(b, "Content-Type", "text/plain; charset=utf-8")
	b = AppendField(b, "Content-Length", itoa(len(body)))
	b = AppendField(b, "Connection", "close")
	b = append(b, "\r\n"...)
	b = append(b, body...)
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.nc.Write(b)
	lingerClose(c.nc)
}

// lingerClose half-closes and drains briefly before closing, so the
// answer is not lost to a reset when the client is still sending.
func lingerClose(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(nc, 256<<10))
	}
	nc.Close()
}

// endRequest ends a request after its handler: the connection closes
// when the response failed or says so, or the body cannot be read to its
// end; otherwise it carries the next request.
func (c *conn) endRequest(ok bool, g *bodyGuard) bool {
	if !ok {
		// A reader still blocked on the client returns, then nothing
		// reads the body any more.
		c.nc.SetReadDeadline(aLongTimeAgo)
		g.expire()
		c.enc.mu.Lock()
		c.enc.failed = true
		c.enc.mu.Unlock()
		lingerClose(c.nc)
		return false
	}
	if c.enc.status == http.StatusSwitchingProtocols || c.enc.closeAfter || !c.finishBody(g) {
		lingerClose(c.nc)
		return false
	}
	return true
}

// recoverHandler turns a handler's panic into the end of the response
// after what was written.
func (c *conn) recoverHandler(ok *bool) {
	if p := recover(); p != nil {
		c.handlerPanicked(p)
		*ok = false
	}
}

// handlerPanicked logs a handler's panic and cuts the response. Out of
// line: its log fields made recoverHandler's frame 456 bytes, which every
// request's deferred call pushed below the handler's chain, on lines of
// the goroutine's stack nothing else touches.
//
//go:noinline
func (c *conn) handlerPanicked(p any) {
	if p != http.ErrAbortHandler {
		buf := make([]byte, 16<<10)
		buf = buf[:runtime.Stack(buf, false)]
		c.srv.logger().Error("http1 handler panic", zap.Any("panic", p), zap.ByteString("stack", buf))
	}
	c.enc.abort()
}

// readBody reads the request body for a handler: a framing error answers
// 400 at once (failRequest), the end of the body lets the watch start.
// The caller holds the body's guard.
func (c *conn) readBody(p []byte) (int, error) {
	n, err := c.bd.Read(p)
	if err == io.EOF {
		c.armWatch()
	} else if e, ok := err.(*Error); ok {
		c.enc.failRequest(e)
	}
	return n, err
}

// bodyGuard serialises a request body's reads: they can come from another
// goroutine than the handler's (a proxy streams the body upstream while
// it waits for the response). Once the request is over the body reads
// nothing more, so a late reader cannot take bytes of the next request.
type bodyGuard struct {
	mu   sync.Mutex
	over bool
}

var errBodyOver = errors.New("http1: request body read after the request ended")

// expire marks the body over (a nil guard: the request had no body).
func (g *bodyGuard) expire() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.over = true
	g.mu.Unlock()
}

// finishBody reads what the handler left of the request body, up to
// maxDrain, so the connection can carry the next request, and marks the
// body over.
func (c *conn) finishBody(g *bodyGuard) bool {
	if g == nil {
		return true
	}
	if c.bd.Done() {
		g.expire()
		return true
	}
	if c.bd.beforeRead != nil {
		// 100 Continue was never sent: the client may not send the body.
		g.expire()
		return false
	}
	// Set before taking the guard: it also bounds a late reader's read.
	c.setReadDeadline(clock.Now().Add(orDefault(c.srv.ReadHeaderTimeout, 10*time.Second)))
	g.mu.Lock()
	defer g.mu.Unlock()
	g.over = true
	var buf [4 << 10]byte
	var total int64
	for !c.bd.Done() {
		n, err := c.bd.Read(buf[:])
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil || total > maxDrain {
			return false
		}
	}
	return true
}

// handOver gives the connection to the handler (an upgrade) with a copy
// of the bytes read past the request head; the caller holds enc.mu.
func (c *conn) handOver() (net.Conn, []byte) {
	c.stopWatch()
	c.hijacked = true
	c.srv.track(c, false) // the handler owns it now; Shutdown no longer waits for it
	c.nc.SetDeadline(time.Time{})
	var rest []byte
	if b := c.r.buffered(); len(b) > 0 {
		rest = append([]byte(nil), b...)
		c.r.consume(len(b))
	}
	return c.nc, rest
}

// maxDrain is how much unread request body is read and dropped to keep a
// connection; past it the connection closes (net/http's figure).
const maxDrain = 256 << 10

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// replayConn reads buf first, then the connection.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// WriteThrough is what a connection wrapper implements when its writes go
// unchanged to the connection it wraps (a listener's accounting or
// sniffing wrappers): the server then writes head and body with one
// writev on the connection underneath, which net.Buffers only does for
// the standard library's own connection types.
type WriteThrough interface {
	WriteThrough() net.Conn
}

// ReadWaiter is what a connection implements when it can wait for its
// next bytes without a buffer (runtime/iohandle's Conn): it returns once
// a Read would find something, or the read deadline passed, or the
// connection closed, and reports whether it waited (false: the Read will
// wait itself). A wrapper passes the wait on only while it holds no read
// bytes of its own. The server then keeps no read buffer while a
// kept-alive connection idles: it takes one from the pool once the next
// request is there, most often the buffer another connection just gave
// back, still in the cache.
type ReadWaiter interface {
	WaitReadable() bool
}

func writeThrough(c net.Conn) net.Conn {
	for {
		w, ok := c.(WriteThrough)
		if !ok {
			return c
		}
		c = w.WriteThrough()
	}
}
