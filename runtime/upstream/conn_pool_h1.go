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
	"unsafe"

	"github.com/sluice-proxy/sluice/runtime/clock"
	"github.com/sluice-proxy/sluice/runtime/http1"
	"github.com/sluice-proxy/sluice/runtime/iohandle"
	"github.com/sluice-proxy/sluice/runtime/lazytimer"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// h1Pool is the HTTP/1.1 client of http1 clusters, on the codec the
// downstream server uses (runtime/http1). net/http's Transport runs a read
// and a write goroutine per connection and hands every request and
// response between them over channels, which on a small machine costs
// more than the proxying itself. Here the caller's goroutine writes the
// request and reads the response; a goroutine is started only to stream
// a request body that is not held whole, so the response can come back
// while the body is still going out.
//
// Connections are kept per endpoint address, most recently used first.
// Concurrency is bounded by the cluster's connection slots, so the pool
// never has more busy connections than max_connections. Requests are
// never pipelined.
type h1Pool struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	idleTimeout time.Duration
	maxIdle     int   // per endpoint
	maxReqs     int32 // max_requests_per_connection; 0 = unlimited

	mu   sync.Mutex
	idle map[string]*idleConns
	// last is the entry get found last (nil: none yet), which get tries
	// before the map: a cluster of one endpoint, or a run of requests to
	// one, makes no map lookup (some 40 instructions and the map's
	// lines of memory a request). Under mu.
	last   *idleConns
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// maxResponseHeaderBytes bounds a response's status line and headers (and
// the interim heads before it), as net/http's default
// MaxResponseHeaderBytes would, but tighter.
const maxResponseHeaderBytes = http1.DefaultMaxResponseHeaderBytes

// maxInterimResponses bounds the 1xx responses skipped before the final
// one (the codec's cap).
const maxInterimResponses = http1.MaxInterimResponses

// watchDelay is how long an exchange runs before it watches its context
// for a cancel (a deadline is applied to the connection at once). Most
// exchanges end sooner and never pay for the watch: registering one costs
// allocations, a reusable timer does not.
const watchDelay = 10 * time.Millisecond

func newH1Pool(dial func(ctx context.Context, network, addr string) (net.Conn, error), idle time.Duration, maxIdle, maxReqs int) *h1Pool {
	p := &h1Pool{dial: dial, idleTimeout: idle, maxIdle: maxIdle, maxReqs: int32(max(0, maxReqs)),
		idle: map[string]*idleConns{}, stop: make(chan struct{}), done: make(chan struct{})}
	go p.janitor()
	return p
}

// idleConns is an endpoint's idle connections, the most recently used
// last. The map holds it by pointer, so that taking a connection and
// giving one back change it in place: one map lookup each, where a map
// of slices took a lookup and an assignment each (about 300 instructions
// a request between them). An entry goes only once it has stayed empty
// through a whole tick of the janitor (emptyTick), so a list that empties
// and fills again with every request keeps its entry and put makes none
// anew.
type idleConns struct {
	addr      string // the endpoint's, the entry's key in the map (under the pool's mu)
	conns     []*h1Conn
	emptyTick bool // empty at the janitor's last tick, and no put since
	// dropped: the entry left the map (sweep, CloseIdleConnections); a
	// connection whose home it was is put back by a lookup.
	dropped bool
}

// h1Conn is one upstream HTTP/1.1 connection and the state of the
// exchange it carries (one at a time), reused from request to request.
type h1Conn struct {
	pool *h1Pool
	conn net.Conn
	addr string
	// home is the idle entry c was last taken from or put in: put gives
	// c back to it without the map's lookup (some 110 instructions a
	// request) while it is in the map (not dropped). Read and written
	// under the pool's lock.
	home     *idleConns
	cc       http1.ClientConn
	reqs     int32
	lastUsed time.Duration // clock.Mono
	// headRead is when the exchange's response head was read (clock.Mono;
	// zero before it), headReads the codec's count of reads then
	// (http1.ClientConn's Reads): see put.
	headRead  time.Duration
	headReads uint32
	// idle tells, without blocking, whether the socket has bytes the
	// upstream sent after the last response (or its FIN).
	idle idlePeek

	// The exchange in flight.
	st         responseState
	resp       *http1.Response
	ctx        context.Context
	closeAfter bool
	bodyDone   chan error // the body writer's result; nil without one
	// bodyStop tells the body writer the answer has ended: it forwards
	// nothing more (what a client sends after the answer is not the
	// upstream's), and the connection is not reused unless the body had
	// all gone out. Envoy's router resets such an upstream request.
	bodyStop atomic.Bool
	finished atomic.Bool
	watch    ctxWatch
}

// ctxWatch interrupts an exchange whose context ends.
//
// A proxied stream's context registers a callback without allocating and
// ends only through its cancel, its deadlines included (a stream timer
// enforces them): stream.Cancellable's Watch. Such a context is watched
// from the exchange's start to its end, two short locked steps and no
// timer.
//
// Any other context is watched (context.AfterFunc, which sees its
// deadline pass too) once the exchange has run for a while, started by a
// timer made once per connection. A deadline nearer than twice
// watchDelay also goes on the connection at once; a farther one does
// not, since setting and clearing a connection's deadline costs two
// timer updates in the poller on every exchange, and the watch is in
// place long before it. The timer is the connection's (lazytimer: not
// reset and stopped for every exchange), so an exchange is watched
// between one and two delays after it began; but a busy connection's
// timer then fires every delay, a goroutine each time, which is why the
// stream contexts are watched the other way.
type ctxWatch struct {
	mu       sync.Mutex
	ctx      context.Context // the exchange's, while it runs
	stop     func() bool     // the AfterFunc's, once registered
	timer    lazytimer.Timer
	fired    atomic.Bool // the context ended during the exchange
	deadline bool        // a deadline is set on the connection
	expire   func()      // made once per connection (get)
	// watcher is the exchange's context when it is one (registered
	// under watchID), nil otherwise; only the exchange's goroutine
	// touches both.
	watcher stream.Watchable
	watchID uint64
}

func (c *h1Conn) startWatch(ctx context.Context) {
	w := &c.watch
	w.fired.Store(false)
	if cw, ok := ctx.(stream.Watchable); ok {
		w.watcher, w.watchID = cw, cw.Watch(w.expire)
		return
	}
	c.startTimedWatch(ctx)
}

// startTimedWatch watches a context that is not a stream's: its deadline
// on the connection when near, an AfterFunc once the exchange has run
// for watchDelay. Out of line: a proxied request's context is a stream's.
func (c *h1Conn) startTimedWatch(ctx context.Context) {
	w := &c.watch
	if ctx.Done() == nil {
		return
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*watchDelay {
		c.conn.SetDeadline(dl)
		w.deadline = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ctx = ctx
	if !w.timer.Inited() {
		w.timer.Init(c.watchFire)
	}
	w.timer.Begin(watchDelay)
}

// expireWatch is what the watch runs when the exchange's context ends:
// the exchange's reads and writes fail at once.
func (c *h1Conn) expireWatch() {
	c.watch.fired.Store(true)
	c.conn.SetDeadline(aLongTimeAgo)
}

func (c *h1Conn) watchFire() {
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	// Pending: an exchange runs and is not watched yet.
	if w.timer.Fired(watchDelay, w.ctx != nil && w.stop == nil) {
		w.stop = context.AfterFunc(w.ctx, w.expire)
	}
}

// endWatch stops the timer for good: the connection is done.
func (c *h1Conn) endWatch() {
	w := &c.watch
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

// stopWatch ends the watch; false when the context ended during the
// exchange (the connection's deadline was moved: it is not reused).
func (c *h1Conn) stopWatch() bool {
	w := &c.watch
	if w.watcher == nil || w.deadline {
		return c.stopTimedWatch()
	}
	// A stream's context (startWatch): the whole of it.
	ok := w.watcher.Unwatch(w.watchID) // false: expire ran or is running
	w.watcher, w.watchID = nil, 0
	return ok && !w.fired.Load()
}

// stopTimedWatch is stopWatch for any watch, a deadline on the connection
// included. Out of line: a stream's watch sets none.
func (c *h1Conn) stopTimedWatch() bool {
	w := &c.watch
	ok := true
	if w.watcher != nil {
		ok = w.watcher.Unwatch(w.watchID) // false: expire ran or is running
		w.watcher, w.watchID = nil, 0
	} else {
		w.mu.Lock() // the timer runs on: it finds no exchange or a later one
		stop := w.stop
		w.ctx, w.stop = nil, nil
		w.mu.Unlock()
		if stop != nil && !stop() {
			ok = false // it ran or is running
		}
	}
	if w.fired.Load() {
		ok = false
	}
	if ok && w.deadline {
		c.conn.SetDeadline(time.Time{})
	}
	w.deadline = false
	return ok
}

func (p *h1Pool) janitor() {
	defer close(p.done)
	t := time.NewTicker(max(p.idleTimeout/2, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			for _, c := range p.sweep(clock.MonoOf(now)) {
				c.close()
			}
		}
	}
}

// sweep takes the connections idle for idleTimeout at now (clock.Mono)
// out of the pool, for the caller to close, and drops the entries of
// endpoints that had none through a whole tick.
func (p *h1Pool) sweep(now time.Duration) (stale []*h1Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, l := range p.idle {
		keep := l.conns[:0]
		for _, c := range l.conns {
			if now-c.lastUsed >= p.idleTimeout {
				stale = append(stale, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(l.conns[len(keep):])
		l.conns = keep
		if len(keep) == 0 {
			if l.emptyTick {
				delete(p.idle, addr)
				l.dropped = true
			}
			l.emptyTick = true
		}
	}
	return stale
}

// get returns an idle connection to addr or dials one; reused tells which.
// An idle connection is handed out only if nothing arrived on it since its
// last response: bytes there would be read as the answer to the next
// request, another client's (a desync); a FIN means the upstream closed it.
//
// With checkAtSend, the check of a connection that can do it while it
// sends (sendQuiet: plain TCP) is left to the send.
//
// now is a reading of the clock (clock.Mono) just taken (zero: get
// reads it).
func (p *h1Pool) get(ctx context.Context, addr string, checkAtSend bool, now time.Duration) (c *h1Conn, reused bool, err error) {
	if now == 0 {
		now = clock.Mono()
	}
	for {
		p.mu.Lock()
		l := p.last
		if l == nil || l.dropped || !sameString(l.addr, addr) {
			l = p.lookup(addr)
		}
		if l == nil || len(l.conns) == 0 {
			p.mu.Unlock()
			break
		}
		last := len(l.conns) - 1
		c = l.conns[last]
		l.conns[last] = nil
		l.conns = l.conns[:last]
		c.home = l
		p.mu.Unlock()
		if now-c.lastUsed < p.idleTimeout && (checkAtSend && c.idle.canSendQuiet() || c.idle.quiet()) {
			return c, true, nil
		}
		c.close()
	}
	c, err = p.dialConn(ctx, addr)
	return c, false, err
}

// dialConn is get's dial of a new connection. Out of line: get is
// inlined into send, and this path (the codec's set-up, the new h1Conn)
// would add to send's frame and code on every request.
//
//go:noinline
func (p *h1Pool) dialConn(ctx context.Context, addr string) (*h1Conn, error) {
	conn, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &h1Conn{pool: p, conn: conn, addr: addr}
	c.watch.expire = c.expireWatch // a method value: a closure would move c to the heap on every get
	c.idle.init(conn)
	c.cc.Init(conn, http1.Limits{MaxHeaderBytes: maxResponseHeaderBytes})
	c.st.src, c.st.h1 = c, c
	return c, nil
}

// lookup is get's map lookup, when the entry it found last is another
// endpoint's or has left the map; the entry found becomes last. Under
// p.mu.
//
//go:noinline
func (p *h1Pool) lookup(addr string) *idleConns {
	l := p.idle[addr]
	if l != nil {
		l.addr = addr // the caller's bytes: see sameString
		p.last = l
	}
	return l
}

// sameString says a and b are the same bytes in memory, which get's
// check of its last entry needs: the address it is given is its
// endpoint's, the one the entry holds (lookup keeps the caller's). A
// comparison of the contents was a call (runtime.memequal) and reloads
// around it on every request; equal contents elsewhere in memory only
// send get to lookup.
func sameString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// put keeps c for a later request. Its idle age counts from the moment
// the upstream sent the last of the response, which its own keep-alive
// timeout counts from: when nothing was read since the head (the body
// came with it, as a small body does), that is the head's reading, the
// moment those bytes were read; otherwise a reading now, just after the
// last read (what came between, the proxy's write to its client, only
// makes the age the upstream sees longer than ours, never shorter).
func (p *h1Pool) put(c *h1Conn) {
	if c.bodyWithHead() {
		c.lastUsed = c.headRead
	} else {
		c.lastUsed = clock.Mono()
	}
	c.cc.Idle()
	p.mu.Lock()
	l := c.home
	if l == nil || l.dropped || p.closed || len(l.conns) >= p.maxIdle || len(l.conns) == cap(l.conns) {
		p.putSlow(c)
		return
	}
	// Back to the entry it came from, which has room: no lookup, no
	// growth.
	l.conns = append(l.conns, c)
	l.emptyTick = false
	p.mu.Unlock()
}

// putSlow is put, under p.mu (which it releases), when c's entry is not
// at hand with room: the entry is looked up or made, its list grows, or
// c is closed (the pool is closed, or the endpoint has maxIdle idle
// connections already). Out of line: a connection taken from an entry
// and given back to it, the usual case, needs none of it.
//
//go:noinline
func (p *h1Pool) putSlow(c *h1Conn) {
	l := c.home
	if l == nil || l.dropped {
		l = p.idle[c.addr]
	}
	if p.closed || l != nil && len(l.conns) >= p.maxIdle {
		p.mu.Unlock()
		c.close()
		return
	}
	if l == nil {
		l = &idleConns{addr: c.addr}
		p.idle[c.addr] = l
	}
	c.home = l
	l.conns = append(l.conns, c)
	l.emptyTick = false
	p.mu.Unlock()
}

// close closes an idle or settled connection and frees its buffers.
func (c *h1Conn) close() {
	c.endWatch()
	c.conn.Close()
	c.cc.Release()
}

// CloseIdleConnections closes every idle connection.
func (p *h1Pool) CloseIdleConnections() {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string]*idleConns{}
	for _, l := range idle {
		l.dropped = true // a busy connection's put finds the new map's
	}
	p.mu.Unlock()
	for _, l := range idle {
		for _, c := range l.conns {
			c.close()
		}
	}
}

// closeAll closes idle connections and stops pooling: connections busy now
// close when their response ends.
func (p *h1Pool) closeAll() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.CloseIdleConnections()
	<-p.done
}

// send is one try on a pooled connection. A try that failed on a reused
// connection before any response byte arrived is sent once more on a
// fresh one when that is safe (see Request.replayable).
func (p *h1Pool) send(ctx context.Context, req *Request, addr string, at time.Duration) (*responseState, error) {
	// A request written in one piece is sent with sendQuiet, which checks
	// an idle connection as it sends.
	oneWrite := sentInOneWrite(req)
	for {
		c, reused, err := p.get(ctx, addr, oneWrite, at)
		at = 0 // a second get follows a failed exchange: I/O since
		if err != nil {
			req.closeStream()
			return nil, err
		}
		mode := writePlain
		if oneWrite && c.idle.canSendQuiet() {
			mode = writeThenWait
			if reused {
				mode = checkWriteWait
			}
		}
		st, err := p.exchange(ctx, c, req, mode)
		if err == nil {
			return st, nil
		}
		if err == errNotQuiet {
			continue // nothing was sent; the connection is closed
		}
		if reused && errors.Is(err, http1.ErrNoResponse) && req.replayable() && ctx.Err() == nil {
			continue
		}
		return nil, err
	}
}

// errNotQuiet is an idle connection found with bytes to read (or closed)
// when a request was about to go out on it: nothing was sent.
var errNotQuiet = errors.New("upstream: idle connection not quiet")

// wholeBodyInline is the largest whole body written with the head on the
// caller's goroutine: it fits a socket's send buffer, so the write does
// not wait for the upstream to read (which might answer first and stop
// reading). Larger bodies go out beside the response read.
const wholeBodyInline = 64 << 10

var aLongTimeAgo = time.Unix(1, 0)

var errUnsolicitedUpgrade = errors.New("upstream answered 101 Switching Protocols to a request that did not ask to upgrade")

// sentInOneWrite says a request goes out in one write, head and whole
// body, with nothing left for a body writer.
func sentInOneWrite(req *Request) bool {
	return req.BodyStream == nil && len(req.Body) <= wholeBodyInline
}

// sendMode is how a request's bytes go out (see sendRequest).
type sendMode uint8

const (
	writePlain     sendMode = iota // a write
	writeThenWait                  // a new connection: write, wait for the answer (sendQuiet)
	checkWriteWait                 // an idle connection: check it, write, wait (sendQuiet)
)

// exchange writes req on c (as mode says) and reads the response head.
func (p *h1Pool) exchange(ctx context.Context, c *h1Conn, req *Request, mode sendMode) (*responseState, error) {
	c.headRead = 0
	if err := ctx.Err(); err != nil {
		return p.exchangeEnded(c, req, err)
	}
	// Looked up before the request goes: after the wait for the answer,
	// with other connections served meanwhile, the map is out of the
	// cache (this lookup showed in profiles there).
	head := string(req.method()) == http.MethodHead
	c.ctx = ctx
	c.bodyDone = nil
	c.bodyStop.Store(false)
	c.finished.Store(false)
	c.startWatch(ctx)

	c.reqs++
	c.closeAfter = p.maxReqs > 0 && c.reqs >= p.maxReqs
	bodyLen := req.bodyLength()
	f := http1.RequestFraming{BodyLength: bodyLen, Close: c.closeAfter}
	var whole []byte
	stream := req.BodyStream
	if req.Body != nil {
		if len(req.Body) <= wholeBodyInline {
			whole = req.Body
		} else {
			stream = &wholeReader{b: req.Body}
		}
	}
	out, upgrade, err := c.cc.EncodeRequest(req.Headers, f, whole, req.Trailers)
	if err == nil {
		err = c.sendRequest(out, mode)
		c.cc.Sent()
	}
	if err != nil {
		return c.sendFailed(ctx, req, err)
	}
	if stream != nil {
		c.startBody(stream, bodyLen, req)
	}

	resp, err := c.cc.ReadResponse(head)
	if err != nil {
		// A body writer still running fails on the closed connection.
		return c.fail(ctx, err)
	}
	if resp.Status == http.StatusSwitchingProtocols && !upgrade {
		// Switching to a protocol nobody asked for would turn the
		// client's stream into a raw pipe to the upstream.
		return c.fail(ctx, errUnsolicitedUpgrade)
	}
	// One reading for the moment the head came: the router's upstream
	// timing and the stream's progress (Response.HeadAt) and, when the
	// body came with it, the connection's idle age (put).
	c.headRead, c.headReads = clock.Mono(), c.cc.Reads()
	c.resp = resp
	st := &c.st
	st.headers = &resp.Header
	st.status = resp.Status
	st.bodyLen = resp.ContentLength
	if head {
		st.bodyLen = 0
	}
	if st.bodyLen == 0 && resp.Status != http.StatusSwitchingProtocols {
		c.stopBody() // the head is the whole answer
	}
	return st, nil
}

// The paths of exchange that a plain request does not take are kept out
// of line (and out of its cache lines): exchangeEnded, sendFailed, fail,
// startBody.

// exchangeEnded is exchange on a context that has already ended: nothing
// is sent and c goes back to the pool.
//
//go:noinline
func (p *h1Pool) exchangeEnded(c *h1Conn, req *Request, err error) (*responseState, error) {
	req.closeStream()
	p.put(c)
	return nil, err
}

// sendFailed ends an exchange whose request did not go out: on an idle
// connection found not quiet (errNotQuiet, nothing was sent), or with
// the write's (or the head's encoding's) error.
//
//go:noinline
func (c *h1Conn) sendFailed(ctx context.Context, req *Request, err error) (*responseState, error) {
	if err == errNotQuiet {
		c.stopWatch()
		c.close()
		return nil, err
	}
	req.closeStream()
	var he *http1.HeadError
	if !errors.As(err, &he) {
		// The upstream closed the connection before our request: as
		// good as no response at all.
		err = &noResponseError{err: err}
	}
	return c.fail(ctx, err)
}

// fail ends an exchange that failed once it had begun: c is closed.
//
//go:noinline
func (c *h1Conn) fail(ctx context.Context, err error) (*responseState, error) {
	c.stopWatch()
	c.conn.Close()
	// Not Release: a body writer may still be running on c.
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return nil, err
}

// startBody streams a request body beside the response read: a server
// may answer (413, 401) before it has read it all.
//
//go:noinline
func (c *h1Conn) startBody(stream io.Reader, bodyLen int64, req *Request) {
	c.bodyDone = make(chan error, 1)
	go func(done chan<- error) { done <- c.writeBody(stream, bodyLen, req.Trailers) }(c.bodyDone)
}

// stopBody ends a request body still streaming once the answer has
// ended: the writer forwards nothing it reads after this, and a write
// blocked on an upstream that no longer reads fails at once.
func (c *h1Conn) stopBody() {
	if c.bodyDone == nil || c.bodyStop.Swap(true) {
		return
	}
	c.conn.SetWriteDeadline(aLongTimeAgo)
}

// errBodyStopped is the body writer's result when the answer ended first.
var errBodyStopped = errors.New("upstream answered before the request body was sent")

// sendRequest writes a request's bytes. When b is the whole request on a
// plain TCP connection, sendQuiet writes it and waits for the answer, and
// on an idle connection first checks it is quiet (errNotQuiet when it was
// not, with nothing written).
func (c *h1Conn) sendRequest(b []byte, mode sendMode) error {
	if mode == writePlain {
		_, err := c.conn.Write(b)
		return err
	}
	n, err := c.idle.sendQuiet(b, mode == checkWriteWait)
	if err == nil && n < len(b) {
		_, err = c.conn.Write(b[n:])
	}
	return err
}

// noResponseError marks a failure before the first response byte.
type noResponseError struct{ err error }

func (e *noResponseError) Error() string {
	return "upstream closed the connection before responding: " + e.err.Error()
}
func (e *noResponseError) Unwrap() error   { return e.err }
func (e *noResponseError) Is(t error) bool { return t == http1.ErrNoResponse }

// chunkBufs holds the read buffers of streamed request bodies.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// writeBody copies a streamed request body, framed by Content-Length
// (bodyLen > 0) or chunked with trailers t, then closes the stream.
func (c *h1Conn) writeBody(body io.Reader, bodyLen int64, t *stream.HeaderMap) (err error) {
	defer func() {
		if cl, ok := body.(io.Closer); ok {
			cl.Close()
		}
	}()
	chunked := bodyLen < 0
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	var sent int64
	for {
		if !chunked && int64(len(buf)) > bodyLen-sent {
			buf = buf[:bodyLen-sent+1] // one more byte tells a body that is too long
		}
		// The read comes first even once stopped: a read blocked on a
		// client that stopped sending is how the proxy sees, at the
		// stream's end, that the body will not end (it then resets the
		// downstream rather than wait to drain it).
		n, rerr := body.Read(buf)
		if c.bodyStop.Load() {
			// Read after the answer ended (a client that goes on once it
			// has it): not the upstream's any more.
			return errBodyStopped
		}
		if n > 0 {
			sent += int64(n)
			if !chunked && sent > bodyLen {
				return fmt.Errorf("request body is longer than its Content-Length %d", bodyLen)
			}
			// Each piece goes out as it comes: a streaming body (gRPC-web,
			// uploads) must not wait for a buffer to fill.
			if err := c.cc.WriteBody(buf[:n], chunked); err != nil {
				return fmt.Errorf("writing request body: %w", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading request body: %w", rerr)
		}
	}
	if !chunked && sent != bodyLen {
		return fmt.Errorf("request body is %d bytes, Content-Length said %d", sent, bodyLen)
	}
	return c.cc.FinishBody(chunked, t)
}

// wholeReader reads a whole body that is too large to write inline.
type wholeReader struct {
	b []byte
}

func (r *wholeReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// readBody is the Response's ReadBody on HTTP/1.1.
func (c *h1Conn) readBody(p []byte) (int, error) {
	n, err := c.cc.ReadBody(p)
	switch {
	case err == nil:
	case err == io.EOF: // one comparison with io.EOF (a runtime call), not two
		c.stopBody()
	default:
		err = c.readFailed(err)
	}
	return n, err
}

// readFailed is readBody's error, with the context's when it has ended.
// Out of line: the error's making (fmt.Errorf's arguments) would add to
// readBody's frame on every read.
//
//go:noinline
func (c *h1Conn) readFailed(err error) error {
	if ctxErr := c.ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return err
}

func (c *h1Conn) trailers() *stream.HeaderMap { return c.cc.Trailers() }

func (c *h1Conn) headAt() time.Duration { return c.headRead }

func (c *h1Conn) bodyWithHead() bool { return c.headRead != 0 && c.cc.Reads() == c.headReads }

// finish settles the connection once: back to the pool only when the body
// was read to its framed end, nothing follows it, the request body went
// out whole and the context never fired.
func (c *h1Conn) finish(aborted bool) {
	if !c.finished.CompareAndSwap(false, true) {
		return
	}
	ok := c.stopWatch()
	if aborted {
		// A read may be blocked on another goroutine: closing the
		// connection ends it; the buffers are left to the collector.
		c.conn.Close()
		return
	}
	var peekTLS func() bool // nil over plain text: no method value, no call
	if c.idle.tls {
		peekTLS = c.peekTLS
	}
	reuse := ok && !c.closeAfter && c.cc.Reusable(peekTLS)
	if reuse && c.bodyDone != nil && !bodyWritten(c.bodyDone) {
		// The server answered before taking the whole request body; the
		// connection is in an unknown state. The writer goroutine ends on
		// its own once the closed connection fails its next write.
		reuse = false
	}
	switch {
	case reuse:
		if c.bodyStop.Load() {
			// The body had all gone out before the stop: the deadline
			// that would have cut a write comes off.
			c.conn.SetWriteDeadline(time.Time{})
		}
		// An idle connection keeps nothing of the request (nothing reads
		// st now: Close has what it needs, and a read racing it made it
		// abort).
		c.ctx = nil
		c.st.cl, c.st.ep = nil, nil
		c.pool.put(c)
	case c.bodyDone != nil:
		c.conn.Close() // the writer may still use the write buffer
	default:
		c.close()
	}
}

// peekTLS looks, over TLS, for bytes tls.Conn decrypted past the response
// (see hasUnread); finish passes none over plain text. The read must not
// wait nor take more from the socket: iohandle holds the socket's reads,
// or else a deadline in the past does (two deadline changes, and an
// error value made by the failed read).
func (c *h1Conn) peekTLS() bool {
	if iohandle.HoldReads(c.idle.sock, true) {
		got := c.cc.ReadAhead()
		iohandle.HoldReads(c.idle.sock, false)
		return got
	}
	c.conn.SetReadDeadline(aLongTimeAgo)
	got := c.cc.ReadAhead()
	c.conn.SetReadDeadline(time.Time{})
	return got
}

// bodyWritten reports whether the request body writer finished without
// error. It allows the writer a moment: it may have flushed the last bytes
// (and the server answered) before it got to report back. net/http waits
// 50ms for the same reason.
func bodyWritten(done chan error) bool {
	select {
	case err := <-done:
		return err == nil
	default:
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case err := <-done:
		return err == nil
	case <-t.C:
		return false
	}
}

// upgrade hands over the connection after a 101.
func (c *h1Conn) upgrade() (io.ReadWriteCloser, error) {
	c.finished.Store(true)
	if !c.stopWatch() {
		c.conn.Close()
		if err := c.ctx.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("upstream: request context ended during the upgrade")
	}
	return &upgradedConn{c: c}, nil
}

// upgradedConn is an upgraded connection: the bytes read past the 101's
// head first, then the connection.
type upgradedConn struct {
	c *h1Conn
}

func (u *upgradedConn) Read(p []byte) (int, error) { return u.c.cc.ReadUpgraded(p) }

func (u *upgradedConn) Write(p []byte) (int, error) { return u.c.conn.Write(p) }

func (u *upgradedConn) Close() error { return u.c.conn.Close() }
