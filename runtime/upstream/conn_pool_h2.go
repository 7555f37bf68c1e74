package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// h2Pool keeps HTTP/2 client connections per endpoint on top of x/net's
// ClientConn. It replaces http2.Transport's own pool for three reasons:
// that pool retries REFUSED_STREAM and GOAWAY'd requests on its own,
// without limit, on the same endpoint (the proxy's retry policy must see
// them to pick another endpoint); it cannot retire a connection after N
// streams (max_requests_per_connection); and it dials a new connection per
// waiting request when streams run out, where we dial one at a time.
//
// A connection takes streams until the peer's MAX_CONCURRENT_STREAMS is
// reached; then the next request dials another connection to the same
// endpoint, as Envoy's h2 pool does.
type h2Pool struct {
	t          *http2.Transport // settings for NewClientConn only
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
	cc   *http2.ClientConn // set with err nil
	err  error
}

func newH2Pool(t *http2.Transport, dial func(ctx context.Context, network, addr string) (net.Conn, error), handshakeTimeout time.Duration, maxStreams int) *h2Pool {
	return &h2Pool{t: t, dial: dial, handshakeTimeout: handshakeTimeout, maxStreams: int32(max(0, maxStreams)),
		conns: map[string][]*h2Conn{}, dialing: map[string]*h2Dial{}}
}

// errConnUnusable is x/net's unexported errClientConnUnusable: the
// connection could not take the stream, and nothing was sent.
const errConnUnusable = "http2: client conn not usable"

func (p *h2Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	for try := 0; ; try++ {
		c, last, err := p.get(req.Context(), addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := c.cc.RoundTrip(req)
		if last {
			// Only now: a reserved stream on a do-not-reuse connection
			// would be refused. The connection closes after its last
			// stream, or at the next prune if that already ended.
			c.cc.SetDoNotReuse()
		}
		if err != nil && try < 2 && err.Error() == errConnUnusable {
			// Lost a race with the connection closing; the request was
			// not sent, so another connection may take it.
			continue
		}
		return resp, err
	}
}

// get returns a connection to addr with a stream reserved for the caller;
// last reports that the stream is the connection's final one.
func (p *h2Pool) get(ctx context.Context, addr string) (*h2Conn, bool, error) {
	pending, dead := false, 0
	defer func() {
		if pending {
			p.leavePending()
		}
	}()
	for {
		p.mu.Lock()
		if c, last := p.reserveLocked(addr); c != nil {
			p.mu.Unlock()
			return c, last, nil
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
				return nil, false, err
			}
			pending = true
		}
		select {
		case <-d.done:
			if d.err != nil {
				return nil, false, d.err
			}
			if d.cc.State().Closed {
				// A peer that accepts and hangs up at once would keep us
				// dialing forever.
				if dead++; dead >= 3 {
					return nil, false, &dialError{err: fmt.Errorf("http2: %s closed %d new connections in a row: %w", addr, dead, io.ErrUnexpectedEOF)}
				}
			}
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// reserveLocked takes a stream on an existing connection, pruning the ones
// that closed or stopped taking new streams (those close themselves when
// their last stream ends).
func (p *h2Pool) reserveLocked(addr string) (got *h2Conn, last bool) {
	list := p.conns[addr]
	keep := list[:0]
	for _, c := range list {
		st := c.cc.State()
		if st.Closed {
			continue
		}
		if st.Closing || p.maxStreams > 0 && c.used.Load() >= p.maxStreams {
			if st.StreamsActive == 0 && st.StreamsReserved == 0 && st.StreamsPending == 0 {
				c.cc.Close()
				continue
			}
			keep = append(keep, c)
			continue
		}
		keep = append(keep, c)
		if got == nil && c.cc.ReserveNewRequest() {
			got = c
			if p.maxStreams > 0 {
				last = c.used.Add(1) >= p.maxStreams
			}
		}
	}
	clear(list[len(keep):])
	p.conns[addr] = keep
	return got, last
}

func (p *h2Pool) dialAndAdd(ctx context.Context, addr string, d *h2Dial) {
	conn, err := p.dial(ctx, "tcp", addr)
	var cc *http2.ClientConn
	if err == nil {
		cc, err = p.t.NewClientConn(conn)
		if err == nil {
			// Wait for the peer's SETTINGS before handing the connection
			// out: until then x/net assumes 100 concurrent streams, and a
			// peer allowing fewer would queue our extra requests behind
			// busy streams instead of getting them a connection of their
			// own. The server sends SETTINGS first, so a PING answered
			// means they were read.
			pctx, cancel := context.WithTimeout(ctx, p.handshakeTimeout)
			err = cc.Ping(pctx)
			cancel()
			if err != nil {
				cc.Close()
			}
		} else {
			conn.Close()
		}
		if err != nil {
			err = &dialError{err: fmt.Errorf("http2 handshake with %s: %w", addr, err)}
		}
	}
	p.mu.Lock()
	if err == nil {
		p.conns[addr] = append(p.conns[addr], &h2Conn{cc: cc})
	}
	delete(p.dialing, addr)
	d.cc, d.err = cc, err
	p.mu.Unlock()
	close(d.done)
}

// CloseIdleConnections closes connections with no stream in flight or
// reserved; busy ones are told to close after their last stream.
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
			if st.StreamsActive == 0 && st.StreamsReserved == 0 && st.StreamsPending == 0 {
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
	p.CloseIdleConnections()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, list := range p.conns {
		for _, c := range list {
			c.cc.SetDoNotReuse()
		}
	}
}
