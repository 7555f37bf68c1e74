package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/runtime/http2"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// h2Pool keeps HTTP/2 client connections per endpoint on our own codec
// (runtime/http2's ClientConn). A connection takes streams until the
// peer's MAX_CONCURRENT_STREAMS is reached; then the next request dials
// another connection to the same endpoint, one dial at a time, as Envoy's
// h2 pool does. REFUSED_STREAM and streams a GOAWAY left unprocessed are
// surfaced (RefusedStream), so the proxy's retry policy picks another
// endpoint; a connection is retired after max_requests_per_connection
// streams.
type h2Pool struct {
	opts       http2.ClientOptions
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	maxStreams int32 // max_requests_per_connection; 0 = unlimited
	// handshakeTimeout bounds the wait for the peer's SETTINGS.
	handshakeTimeout time.Duration

	// Optional: account requests that wait for a connection to be set up.
	enterPending func() error
	leavePending func()

	mu      sync.Mutex
	conns   map[string][]*h2Conn
	dialing map[string]*h2Dial
}

type h2Conn struct {
	cc   *http2.ClientConn
	used atomic.Int32
}

type h2Dial struct {
	done chan struct{}
	c    *h2Conn // set with err nil
	err  error
}

func newH2Pool(opts http2.ClientOptions, dial func(ctx context.Context, network, addr string) (net.Conn, error), handshakeTimeout time.Duration, maxStreams int) *h2Pool {
	return &h2Pool{opts: opts, dial: dial, handshakeTimeout: handshakeTimeout, maxStreams: int32(max(0, maxStreams)),
		conns: map[string][]*h2Conn{}, dialing: map[string]*h2Dial{}}
}

// send is one try of req on a stream to addr: the head (and as much of a
// whole body as the windows take) goes out in one batch; the rest of the
// body and the trailers are written on a goroutine, beside the response.
//
// Not inlined: the build's profile (PGO) would inline it, behind a type
// check, into Cluster.Send, whose frame and code every HTTP/1.1 try then
// carried too (its locals made Send's frame some 100 bytes larger).
//
//go:noinline
func (p *h2Pool) send(ctx context.Context, req *Request, addr string, _ time.Duration) (*responseState, error) {
	x := h2ExchangePool.Get().(*h2Exchange)
	x.p = p
	for try := 0; ; try++ {
		s, fresh, err := p.open(ctx, req, addr, x)
		if err != nil {
			req.closeStream()
			x.free()
			return nil, err
		}
		if err = s.AwaitHead(); err != nil {
			x.abort()
			if !fresh && try == 0 && errors.Is(err, io.ErrUnexpectedEOF) && req.replayable() && ctx.Err() == nil {
				// The connection was lost before any answer, on a
				// connection that had served others (an idle close
				// racing the request): once more on a fresh one, as
				// for HTTP/1.1.
				x = h2ExchangePool.Get().(*h2Exchange)
				x.p = p
				continue
			}
			return nil, err
		}
		st := &x.st
		st.headers, st.status = s.Header(), s.Status()
		switch {
		case req.method() != nil && string(req.method()) == http.MethodHead, s.BodyEnded():
			st.bodyLen = 0
		default:
			st.bodyLen = s.ContentLength()
		}
		return st, nil
	}
}

// open takes a stream on a connection to addr and starts the request on
// it; fresh reports a connection on its first stream.
func (p *h2Pool) open(ctx context.Context, req *Request, addr string, x *h2Exchange) (*http2.ClientStream, bool, error) {
	body, end := req.Body, req.Trailers == nil && req.BodyStream == nil
	cl := req.bodyLength()
	if cl == 0 && req.BodyStream == nil {
		switch string(req.method()) {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			// As net/http: an empty body that a server may want to see
			// declared.
		default:
			cl = -1
		}
	}
	for busy := 0; ; busy++ {
		c, err := p.get(ctx, addr)
		if err != nil {
			return nil, false, err
		}
		s, rest, err := c.cc.Open(ctx, req.Headers, cl, body, end)
		if errors.Is(err, http2.ErrConnBusy) && busy < 100 {
			// Lost a race for the connection's last stream, or it began
			// to drain: nothing was sent.
			continue
		}
		if err != nil {
			return nil, false, err
		}
		n := c.used.Add(1)
		if p.maxStreams > 0 && n >= p.maxStreams {
			c.cc.Retire()
		}
		x.s = s
		x.refs.Store(1)
		if len(rest) > 0 || !end {
			x.refs.Store(2)
			x.req = req
			go x.writeBody(req, rest)
		}
		return s, n == 1, nil
	}
}

// h2Exchange is one request's stream as a responseSource; reused.
type h2Exchange struct {
	st       responseState
	p        *h2Pool
	s        *http2.ClientStream
	refs     atomic.Int32 // owners of s: the response, the body writer
	req      *Request     // while its body is being written
	bodyDone atomic.Bool
	finished atomic.Bool
	// abandoned: a ReadBody may still run on another goroutine when the
	// response was closed, so neither the stream nor the exchange is
	// reused.
	abandoned atomic.Bool
}

var h2ExchangePool = sync.Pool{New: func() any {
	x := &h2Exchange{}
	x.st.src = x
	return x
}}

// writeBody writes what Open did not (the rest of a whole body, or a
// streamed body) and the trailers.
func (x *h2Exchange) writeBody(req *Request, rest []byte) {
	s := x.s
	var err error
	if len(rest) > 0 {
		_, err = s.Write(rest)
	} else if req.BodyStream != nil {
		bp := h2CopyBufs.Get().(*[]byte)
		err = copyBody(s, req.BodyStream, *bp)
		h2CopyBufs.Put(bp)
		x.closeBody()
	}
	if err == nil {
		s.CloseSend(req.Trailers)
	} else {
		// A body that failed to read must not look complete upstream.
		s.Cancel(fmt.Errorf("upstream: request body: %w", err))
	}
	x.unref()
}

var h2CopyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody copies a streamed body to the stream through buf. Not
// io.CopyBuffer: that needs the reader wrapped (to hide a WriteTo that
// would bypass buf) and the stream as an io.Writer, two interface values
// that cost an allocation per request.
func copyBody(s *http2.ClientStream, r io.Reader, buf []byte) error {
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// closeBody closes a streamed request body once.
func (x *h2Exchange) closeBody() {
	if x.bodyDone.CompareAndSwap(false, true) {
		x.req.closeStream()
	}
}

func (x *h2Exchange) readBody(p []byte) (int, error) { return x.s.Read(p) }

func (x *h2Exchange) trailers() *stream.HeaderMap { return x.s.Trailers() }

func (x *h2Exchange) headAt() time.Duration { return 0 }

func (x *h2Exchange) bodyWithHead() bool { return false }

// finish ends the stream: one not over both ways is reset (the body
// writer, if running, then fails and lets go).
func (x *h2Exchange) finish(aborted bool) {
	if !x.finished.CompareAndSwap(false, true) {
		return
	}
	if aborted {
		x.abandoned.Store(true)
	}
	if x.req != nil {
		// A body read still blocked (a slow client, an upstream that
		// answered early) ends with the request.
		x.closeBody()
	}
	if !x.s.Done() {
		x.s.Cancel(nil)
	}
	x.unref()
}

func (x *h2Exchange) upgrade() (io.ReadWriteCloser, error) {
	x.finish(true)
	return nil, errors.New("upstream: HTTP/2 cannot upgrade a connection")
}

// abort ends a try that got no response head.
func (x *h2Exchange) abort() {
	x.s.Cancel(nil)
	if x.req != nil {
		x.closeBody()
	}
	x.unref()
}

// unref drops one owner; the last releases the stream and the exchange.
func (x *h2Exchange) unref() {
	if x.refs.Add(-1) == 0 {
		if x.abandoned.Load() {
			x.s.Abandon()
			return
		}
		x.s.Release()
		x.free()
	}
}

func (x *h2Exchange) free() {
	x.st.gen.Add(1) // handles to the old exchange are dead
	x.st.headers, x.st.status, x.st.bodyLen = nil, 0, 0
	x.st.cl, x.st.ep = nil, nil
	x.p, x.s, x.req = nil, nil, nil
	x.bodyDone.Store(false)
	x.finished.Store(false)
	h2ExchangePool.Put(x)
}

// get returns a connection to addr that may take a stream now.
func (p *h2Pool) get(ctx context.Context, addr string) (*h2Conn, error) {
	pending, dead := false, 0
	defer func() {
		if pending {
			p.leavePending()
		}
	}()
	for {
		p.mu.Lock()
		if c := p.pickLocked(addr); c != nil {
			p.mu.Unlock()
			return c, nil
		}
		d := p.dialing[addr]
		if d == nil {
			d = &h2Dial{done: make(chan struct{})}
			p.dialing[addr] = d
			p.mu.Unlock()
			// The dial outlives the request that started it: others may
			// be waiting for the same connection.
			go p.dialAndAdd(context.WithoutCancel(ctx), addr, d)
		} else {
			p.mu.Unlock()
		}
		if !pending && p.enterPending != nil {
			if err := p.enterPending(); err != nil {
				return nil, err
			}
			pending = true
		}
		select {
		case <-d.done:
			if d.err != nil {
				return nil, d.err
			}
			if st := d.c.cc.State(); st.Closed || (st.Draining || st.Full) && st.Active == 0 {
				// A peer that accepts and hangs up at once, or allows no
				// stream at all (MAX_CONCURRENT_STREAMS 0), would keep us
				// dialing forever. (A connection other waiters filled
				// first is no sign of that.)
				if dead++; dead >= 3 {
					return nil, &dialError{err: fmt.Errorf("http2: %s closed or took no stream on %d new connections in a row: %w", addr, dead, io.ErrUnexpectedEOF)}
				}
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// pickLocked returns the first connection that takes a stream, pruning
// closed ones (draining ones close themselves after their last stream).
func (p *h2Pool) pickLocked(addr string) *h2Conn {
	list := p.conns[addr]
	keep := list[:0]
	var got *h2Conn
	for _, c := range list {
		st := c.cc.State()
		if st.Closed {
			continue
		}
		keep = append(keep, c)
		if got == nil && !st.Draining && !st.Full {
			got = c
		}
	}
	clear(list[len(keep):])
	p.conns[addr] = keep
	return got
}

func (p *h2Pool) dialAndAdd(ctx context.Context, addr string, d *h2Dial) {
	conn, err := p.dial(ctx, "tcp", addr)
	var c *h2Conn
	if err == nil {
		c = &h2Conn{cc: http2.NewClientConn(conn, p.opts)}
		// Wait for the peer's SETTINGS before handing the connection
		// out: until then its stream limit is unknown, and a peer
		// allowing few would see our extra streams refused instead of
		// them getting a connection of their own.
		wctx, cancel := context.WithTimeout(ctx, p.handshakeTimeout)
		err = c.cc.WaitSettings(wctx)
		cancel()
		if err != nil {
			c.cc.Close()
			err = &dialError{err: fmt.Errorf("http2 handshake with %s: %w", addr, err)}
		}
	}
	p.mu.Lock()
	if err == nil {
		p.conns[addr] = append(p.conns[addr], c)
	}
	delete(p.dialing, addr)
	d.c, d.err = c, err
	p.mu.Unlock()
	close(d.done)
}

// CloseIdleConnections closes connections with no stream in flight.
func (p *h2Pool) CloseIdleConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, list := range p.conns {
		keep := list[:0]
		for _, c := range list {
			st := c.cc.State()
			if st.Closed {
				continue
			}
			if st.Active == 0 {
				c.cc.Close()
				continue
			}
			keep = append(keep, c)
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(p.conns, addr)
		} else {
			p.conns[addr] = keep
		}
	}
}

// closeAll retires every connection: idle ones now, busy ones after their
// last stream.
func (p *h2Pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, list := range p.conns {
		for _, c := range list {
			c.cc.Retire()
		}
	}
}
