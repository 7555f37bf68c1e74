package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Pool is the HTTP/1.1 client of http1 clusters. It replaces
// http.Transport on the hot path: net/http runs a read and a write
// goroutine per connection and hands every request and response between
// them over channels, which on a small machine costs more than the proxying
// itself. Here the caller's goroutine writes the request and reads the
// response; a goroutine is started only to stream a request body, so the
// response can come back while the body is still going out.
//
// Connections are kept per endpoint address, most recently used first.
// Concurrency is bounded by the cluster's connection slots, so the pool
// never has more busy connections than max_connections.
type h1Pool struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	idleTimeout time.Duration
	maxIdle     int   // per endpoint
	maxReqs     int32 // max_requests_per_connection; 0 = unlimited

	mu     sync.Mutex
	idle   map[string][]*h1Conn
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// maxResponseHeaderBytes bounds a response's status line and headers, as
// net/http's default MaxResponseHeaderBytes would, but tighter.
const maxResponseHeaderBytes = 1 << 20

func newH1Pool(dial func(ctx context.Context, network, addr string) (net.Conn, error), idle time.Duration, maxIdle, maxReqs int) *h1Pool {
	p := &h1Pool{dial: dial, idleTimeout: idle, maxIdle: maxIdle, maxReqs: int32(max(0, maxReqs)),
		idle: map[string][]*h1Conn{}, stop: make(chan struct{}), done: make(chan struct{})}
	go p.janitor()
	return p
}

// h1Conn is one upstream HTTP/1.1 connection.
type h1Conn struct {
	conn     net.Conn
	addr     string
	lim      readLimiter
	br       *bufio.Reader
	bw       *bufio.Writer
	tp       textproto.Reader
	reqs     int32
	lastUsed time.Time
	// idle tells, without blocking, whether the socket has bytes the
	// upstream sent after the last response (or its FIN).
	idle idlePeek
}

// readLimiter caps how much a response's header section may read; n < 0
// means no cap (bodies are framed by their own length).
type readLimiter struct {
	r io.Reader
	n int64
}

func (l *readLimiter) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

var errHeaderTooLarge = errors.New("upstream response headers exceed 1MiB")

func (p *h1Pool) janitor() {
	defer close(p.done)
	t := time.NewTicker(max(p.idleTimeout/2, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			var stale []*h1Conn
			p.mu.Lock()
			for addr, list := range p.idle {
				keep := list[:0]
				for _, c := range list {
					if now.Sub(c.lastUsed) >= p.idleTimeout {
						stale = append(stale, c)
					} else {
						keep = append(keep, c)
					}
				}
				clear(list[len(keep):])
				if len(keep) == 0 {
					delete(p.idle, addr)
				} else {
					p.idle[addr] = keep
				}
			}
			p.mu.Unlock()
			for _, c := range stale {
				c.conn.Close()
			}
		}
	}
}

// get returns an idle connection to addr or dials one; reused tells which.
// An idle connection is handed out only if nothing arrived on it since its
// last response: bytes there would be read as the answer to the next
// request, another client's (a desync); a FIN means the upstream closed it.
func (p *h1Pool) get(ctx context.Context, addr string) (c *h1Conn, reused bool, err error) {
	now := time.Now()
	for {
		p.mu.Lock()
		list := p.idle[addr]
		if len(list) == 0 {
			p.mu.Unlock()
			break
		}
		c = list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[addr] = list[:len(list)-1]
		p.mu.Unlock()
		if now.Sub(c.lastUsed) < p.idleTimeout && c.idle.quiet() {
			return c, true, nil
		}
		c.conn.Close()
	}
	conn, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	c = &h1Conn{conn: conn, addr: addr}
	c.idle.init(conn)
	c.lim.r = conn
	// Small buffers: an idle connection costs its buffers (sidecars keep
	// many), and reads or writes larger than them bypass them anyway.
	c.br = bufio.NewReaderSize(&c.lim, 8<<10)
	c.bw = bufio.NewWriterSize(conn, 4<<10)
	c.tp.R = c.br
	return c, false, nil
}

func (p *h1Pool) put(c *h1Conn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle[c.addr]) >= p.maxIdle {
		p.mu.Unlock()
		c.conn.Close()
		return
	}
	p.idle[c.addr] = append(p.idle[c.addr], c)
	p.mu.Unlock()
}

// CloseIdleConnections closes every idle connection.
func (p *h1Pool) CloseIdleConnections() {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*h1Conn{}
	p.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.conn.Close()
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

// RoundTrip sends req on a pooled connection. A request that failed on a
// reused connection before any response byte arrived is sent once more on
// a fresh one when it is safe to replay (no body, idempotent), as net/http
// does: the server most likely closed the idle connection.
func (p *h1Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	for {
		c, reused, err := p.get(req.Context(), req.URL.Host)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := p.roundTrip(c, req)
		if err == nil {
			return resp, nil
		}
		var ne *noResponseError
		if reused && errors.As(err, &ne) && replayable(req) && req.Context().Err() == nil {
			continue
		}
		return nil, err
	}
}

// closeBody closes a request body the pool will not send, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// noResponseError marks a failure before the first response byte.
type noResponseError struct{ err error }

func (e *noResponseError) Error() string {
	return "upstream closed the connection before responding: " + e.err.Error()
}
func (e *noResponseError) Unwrap() error { return e.err }

func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

func (p *h1Pool) roundTrip(c *h1Conn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// A canceled context interrupts blocked reads and writes by expiring
	// the connection's deadline; the connection is then not reused.
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { c.conn.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		if stop != nil {
			stop()
		}
		c.conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, err
	}

	c.reqs++
	closeAfter := req.Close || p.maxReqs > 0 && c.reqs >= p.maxReqs
	bodyLen := outgoingLength(req)
	upgrade, err := writeHead(c.bw, req, bodyLen, closeAfter)
	if err != nil {
		if bodyLen != 0 {
			req.Body.Close()
		}
		return fail(err)
	}
	var bodyDone chan error
	if bodyLen != 0 {
		if bodyLen < 0 {
			// A streamed body may only start once the client sees
			// response headers; send ours without waiting for it.
			if err := c.bw.Flush(); err != nil {
				req.Body.Close()
				return fail(&noResponseError{err: err})
			}
		}
		// Stream the body beside the response read: a server may answer
		// (413, 401) before it has read it all.
		bodyDone = make(chan error, 1)
		go func() { bodyDone <- writeBody(c.bw, req, bodyLen) }()
	} else if err := c.bw.Flush(); err != nil {
		return fail(&noResponseError{err: err})
	}

	resp, err := readResponse(c, req)
	if err != nil {
		// A body writer still running fails on the closed connection.
		return fail(err)
	}
	keep := !closeAfter && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !upgrade {
			// Switching to a protocol nobody asked for would turn the
			// client's stream into a raw pipe to the upstream.
			return fail(errUnsolicitedUpgrade)
		}
		if stop != nil && !stop() {
			return fail(ctx.Err())
		}
		resp.Body = &upgradedConn{c: c}
		return resp, nil
	}
	b := &h1Body{pool: p, c: c, stop: stop, keep: keep, bodyDone: bodyDone, ctx: ctx, resp: resp}
	if err := b.frame(req, resp); err != nil {
		return fail(err)
	}
	resp.Body = b
	if b.r == nil {
		// No body at all: settle the connection now.
		b.finish(b.keep)
		resp.Body = http.NoBody
	}
	return resp, nil
}

var aLongTimeAgo = time.Unix(1, 0)

var errUnsolicitedUpgrade = errors.New("upstream answered 101 Switching Protocols to a request that did not ask to upgrade")

func outgoingLength(req *http.Request) int64 {
	if req.Body == nil || req.Body == http.NoBody {
		return 0
	}
	if req.ContentLength != 0 {
		return req.ContentLength
	}
	return -1
}

// writeHead writes the request line and headers and tells whether the
// request asks to upgrade. Header names and values are validated: filters
// may set arbitrary bytes, and a CR or LF passed through would let them
// inject headers or requests.
func writeHead(w *bufio.Writer, req *http.Request, bodyLen int64, closeAfter bool) (upgrade bool, err error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validMethod(method) {
		return false, fmt.Errorf("invalid method %q", method)
	}
	uri := req.URL.RequestURI()
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return false, fmt.Errorf("invalid Host %q", host)
	}
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	connUpgrade := false
	for k, vv := range req.Header {
		switch {
		case strings.EqualFold(k, "Host"), strings.EqualFold(k, "Content-Length"),
			strings.EqualFold(k, "Transfer-Encoding"), strings.EqualFold(k, "Trailer"):
			continue
		case strings.EqualFold(k, "Connection"):
			// Only an upgrade survives; keep-alive is ours to manage.
			for _, v := range vv {
				if httpguts.HeaderValuesContainsToken([]string{v}, "upgrade") {
					connUpgrade = true
				}
			}
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return false, fmt.Errorf("invalid header name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false, fmt.Errorf("invalid value for header %q", k)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	upgrade = connUpgrade && req.Header.Get("Upgrade") != ""
	switch {
	case upgrade:
		w.WriteString("Connection: Upgrade\r\n")
	case closeAfter:
		w.WriteString("Connection: close\r\n")
	}
	switch {
	case bodyLen > 0:
		w.WriteString("Content-Length: ")
		var buf [20]byte
		w.Write(strconv.AppendInt(buf[:0], bodyLen, 10))
		w.WriteString("\r\n")
	case bodyLen < 0:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			keys := make([]string, 0, len(req.Trailer))
			for k := range req.Trailer {
				keys = append(keys, k)
			}
			w.WriteString("Trailer: ")
			w.WriteString(strings.Join(keys, ","))
			w.WriteString("\r\n")
		}
	case methodExpectsBody(method):
		w.WriteString("Content-Length: 0\r\n")
	}
	_, err = w.WriteString("\r\n")
	return upgrade, err
}

func methodExpectsBody(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return m != ""
}

// chunkBufs holds the read buffers of streamed request bodies.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// writeBody copies the request body, framed by Content-Length or chunked,
// then flushes. It closes req.Body, as a RoundTripper must.
func writeBody(w *bufio.Writer, req *http.Request, bodyLen int64) (err error) {
	defer req.Body.Close()
	if bodyLen > 0 {
		n, err := io.Copy(w, io.LimitReader(req.Body, bodyLen))
		if err != nil {
			return fmt.Errorf("writing request body: %w", err)
		}
		if n != bodyLen {
			return fmt.Errorf("request body is %d bytes, Content-Length said %d", n, bodyLen)
		}
		return w.Flush()
	}
	cw := httputil.NewChunkedWriter(w)
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			if _, err := cw.Write(buf[:n]); err != nil {
				return fmt.Errorf("writing request body: %w", err)
			}
			// Flush each chunk: a streaming body (gRPC-web, SSE uploads)
			// must not wait for 16KiB to fill.
			if err := w.Flush(); err != nil {
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
	if err := cw.Close(); err != nil { // the last-chunk line "0\r\n"
		return err
	}
	for k, vv := range req.Trailer {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("invalid trailer name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("invalid value for trailer %q", k)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("\r\n")
	return w.Flush()
}

// maxInterimResponses bounds the 1xx responses skipped before the final
// one: an upstream sending 100 Continue forever would otherwise hold the
// request (and a core) until its timeout. Go's clients allowed 5 before
// they switched to bounding the bytes; we bound both (the interim heads
// share the final head's maxResponseHeaderBytes).
const maxInterimResponses = 10

// readResponse reads the status line and headers, skipping interim 1xx
// responses other than 101.
func readResponse(c *h1Conn, req *http.Request) (*http.Response, error) {
	first := true
	c.lim.n = maxResponseHeaderBytes
	for interim := 0; ; interim++ {
		if interim > maxInterimResponses {
			c.lim.n = -1
			return nil, fmt.Errorf("upstream sent more than %d interim (1xx) responses", maxInterimResponses)
		}
		line, err := c.tp.ReadLine()
		if err != nil {
			c.lim.n = -1
			if first && c.br.Buffered() == 0 {
				return nil, &noResponseError{err: err}
			}
			return nil, fmt.Errorf("reading response status line: %w", eofUnexpected(err))
		}
		first = false
		resp := &http.Response{Request: req}
		if err := parseStatusLine(resp, line); err != nil {
			c.lim.n = -1
			return nil, err
		}
		h, err := c.tp.ReadMIMEHeader()
		if err != nil {
			c.lim.n = -1
			return nil, fmt.Errorf("reading response headers: %w", eofUnexpected(err))
		}
		resp.Header = http.Header(h)
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		c.lim.n = -1
		conn := resp.Header["Connection"]
		resp.Close = httpguts.HeaderValuesContainsToken(conn, "close") ||
			resp.ProtoMajor == 1 && resp.ProtoMinor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
		return resp, nil
	}
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func parseStatusLine(resp *http.Response, line string) error {
	proto, rest, ok := strings.Cut(line, " ")
	if !ok {
		return fmt.Errorf("malformed HTTP response %q", line)
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok || major != 1 {
		return fmt.Errorf("malformed HTTP version in response %q", line)
	}
	code, _, _ := strings.Cut(rest, " ")
	if len(code) != 3 {
		return fmt.Errorf("malformed HTTP status code in %q", line)
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 {
		return fmt.Errorf("malformed HTTP status code in %q", line)
	}
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = proto, major, minor
	resp.StatusCode = n
	resp.Status = rest // "200 OK", a substring of the line: no copy
	if len(rest) == 3 {
		resp.Status = rest + " "
	}
	return nil
}

// h1Body reads one response body and then gives the connection back to
// the pool (or closes it).
type h1Body struct {
	pool     *h1Pool
	c        *h1Conn
	ctx      context.Context
	stop     func() bool
	keep     bool
	bodyDone chan error
	resp     *http.Response

	// Owned by the reading goroutine.
	r       io.Reader // nil: no body
	n       int64     // bytes left when length-framed; -1 otherwise
	chunked bool
	err     error // sticky, once the body ended

	// Close may come from another goroutine while a Read is blocked (the
	// proxy aborting a stream), so the end is settled atomically.
	finished atomic.Bool
	closed   atomic.Bool
}

// frame decides how the body ends (RFC 9112 section 6.3). A framing a
// proxy cannot trust is an error (the caller answers 502 and closes the
// connection, as RFC 9112 asks of a proxy); a framing that is readable but
// doubtful is read and its connection closed afterwards, never reused.
func (b *h1Body) frame(req *http.Request, resp *http.Response) error {
	resp.ContentLength = -1
	cl, hasCL, err := contentLength(resp.Header)
	if err != nil {
		return err
	}
	te, hasTE := resp.Header["Transfer-Encoding"]
	if hasTE && !onlyChunked(te) {
		// Go's Transport refuses other codings too; "gzip, chunked" would
		// also lose the coding the client needs to decode the body.
		return fmt.Errorf("unsupported Transfer-Encoding %q in upstream response", te)
	}
	if req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		// No body follows whatever the headers say; a HEAD response's
		// Content-Length describes the GET body and is passed on. A 204
		// must not declare a body at all (RFC 9110 section 8.6): one that
		// does may send it, so its connection is not reused.
		resp.ContentLength = 0
		if hasCL && req.Method == http.MethodHead {
			resp.ContentLength = cl
		}
		if resp.StatusCode == http.StatusNoContent && (hasTE || hasCL && cl != 0) {
			b.keep = false
		}
		return nil
	}
	if hasTE {
		b.chunked = true
		b.r = httputil.NewChunkedReader(b.c.br)
		b.n = -1
		resp.TransferEncoding = []string{"chunked"}
		delete(resp.Header, "Transfer-Encoding")
		if hasCL || resp.ProtoMinor == 0 {
			// Both framings: a smuggling attempt or a broken server;
			// chunked wins and the connection is never reused (RFC 9112
			// section 6.3, which asks the same of chunked in HTTP/1.0).
			delete(resp.Header, "Content-Length")
			b.keep = false
		}
		if tr := resp.Header["Trailer"]; len(tr) > 0 {
			resp.Trailer = http.Header{}
			for _, v := range tr {
				for _, k := range strings.Split(v, ",") {
					if k = strings.TrimSpace(k); k != "" {
						resp.Trailer[http.CanonicalHeaderKey(k)] = nil
					}
				}
			}
			delete(resp.Header, "Trailer")
		}
		return nil
	}
	if hasCL {
		resp.ContentLength = cl
		if cl == 0 {
			return nil
		}
		b.r, b.n = b.c.br, cl
		return nil
	}
	// Neither: the body ends when the upstream closes.
	b.keep = false
	b.r, b.n = b.c.br, -1
	return nil
}

// onlyChunked tells whether Transfer-Encoding is exactly "chunked", the one
// coding we frame by.
func onlyChunked(te []string) bool {
	return len(te) == 1 && strings.EqualFold(textproto.TrimString(te[0]), "chunked")
}

// contentLength parses Content-Length strictly: digits only (no sign, no
// spaces inside), and repeated fields must agree (RFC 9112 section 6.3:
// anything else makes the framing invalid).
func contentLength(h http.Header) (n int64, ok bool, err error) {
	vv := h["Content-Length"]
	if len(vv) == 0 {
		return 0, false, nil
	}
	first := textproto.TrimString(vv[0])
	for _, v := range vv[1:] {
		if textproto.TrimString(v) != first {
			return 0, false, fmt.Errorf("upstream response has differing Content-Length values %q", vv)
		}
	}
	if first == "" || len(first) > 18 {
		return 0, false, fmt.Errorf("invalid Content-Length %q in upstream response", first)
	}
	for i := 0; i < len(first); i++ {
		if c := first[i]; c < '0' || c > '9' {
			return 0, false, fmt.Errorf("invalid Content-Length %q in upstream response", first)
		}
		n = n*10 + int64(first[i]-'0')
	}
	return n, true, nil
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.n >= 0 && int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	if b.n >= 0 {
		b.n -= int64(n)
		if b.n == 0 && err == nil {
			err = io.EOF
		}
	}
	switch {
	case err == io.EOF && b.n > 0:
		err = io.ErrUnexpectedEOF
		b.fail(err)
	case err == io.EOF && b.chunked:
		if terr := b.readTrailers(); terr != nil {
			b.fail(terr)
			return n, b.err
		}
		b.finish(b.keep)
		b.err = io.EOF
	case err == io.EOF:
		// Length-framed end, or the server closed a close-delimited body.
		b.finish(b.keep && b.n == 0)
		b.err = io.EOF
	case err != nil:
		b.fail(err)
		return n, b.err
	}
	return n, err
}

func (b *h1Body) readTrailers() error {
	b.c.lim.n = maxResponseHeaderBytes
	h, err := b.c.tp.ReadMIMEHeader()
	b.c.lim.n = -1
	if err != nil {
		return fmt.Errorf("reading response trailers: %w", eofUnexpected(err))
	}
	if len(h) > 0 {
		if b.resp.Trailer == nil {
			b.resp.Trailer = http.Header{}
		}
		for k, vv := range h {
			b.resp.Trailer[k] = vv
		}
	}
	return nil
}

func (b *h1Body) fail(err error) {
	if ctxErr := b.ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	b.err = err
	b.finish(false)
}

// finish settles the connection once: back to the pool only when the body
// was read to its framed end, nothing follows it, the request body went
// out whole and the context never fired.
func (b *h1Body) finish(reuse bool) {
	if !b.finished.CompareAndSwap(false, true) {
		return
	}
	if b.stop != nil && !b.stop() {
		reuse = false
	}
	if reuse && b.c.hasUnread() {
		// Bytes past the framed end (after a Content-Length body, or a
		// body on 204, 304 or HEAD) would be read as the next request's
		// response: the next client would get them.
		reuse = false
	}
	if b.bodyDone != nil && !bodyWritten(b.bodyDone) {
		// The server answered before taking the whole request body; the
		// connection is in an unknown state. The writer goroutine ends on
		// its own once the closed connection fails its next write.
		reuse = false
	}
	if reuse {
		b.pool.put(b.c)
	} else {
		b.c.conn.Close()
	}
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

// Close ends the body. Before its end (Read reports io.EOF together with
// the last bytes of a length-framed body, so a caller that read exactly
// Content-Length bytes has already ended it) the connection is closed, which
// also unblocks a Read in progress.
func (b *h1Body) Close() error {
	b.closed.Store(true)
	b.finish(false)
	return nil
}

var errBodyClosed = errors.New("upstream: read on closed response body")

// upgradedConn is a 101 response's body: the raw connection after the
// headers, readable and writable, as net/http hands it out.
type upgradedConn struct {
	c *h1Conn
}

func (u *upgradedConn) Read(p []byte) (int, error) { return u.c.br.Read(p) }

func (u *upgradedConn) Write(p []byte) (int, error) {
	if u.c.bw.Buffered() > 0 {
		if err := u.c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return u.c.conn.Write(p)
}

func (u *upgradedConn) Close() error { return u.c.conn.Close() }
