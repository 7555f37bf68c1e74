package http1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// ClientConn is the client side of one HTTP/1.1 connection: it writes a
// request, then reads its response, one exchange at a time (requests are
// never pipelined: a response that ends early or oddly would otherwise
// be taken for the next request's). Its read buffer and header maps are
// reused from exchange to exchange, so a kept-alive connection allocates
// nothing per request.
//
// The request side (WriteRequest, WriteBody, FinishBody) and the response
// side (ReadResponse, ReadBody) may run on two goroutines, so a server can
// answer before it has read the whole body; each side on one goroutine.
type ClientConn struct {
	nc  net.Conn
	lim Limits

	r    connReader
	bd   bodyReader
	resp Response
	// bodyMode is how the current response's body is read.
	bodyMode  clientBody
	bodyErr   error
	bodyEnded bool

	wbuf []byte // the request side's write buffer
}

type clientBody uint8

const (
	bodyNone   clientBody = iota
	bodyFramed            // Content-Length or chunked: bd reads it
	bodyToEOF             // until the server closes
)

// MaxInterimResponses bounds the 1xx responses skipped before the final
// one: an upstream sending 100 Continue forever would otherwise hold the
// request until its timeout. Their heads also share the final head's byte
// limit.
const MaxInterimResponses = 10

// DefaultMaxResponseHeaderBytes bounds a response head (and the interim
// heads before it) when Limits.MaxHeaderBytes is zero.
const DefaultMaxResponseHeaderBytes = 1 << 20

// ErrNoResponse is a connection that closed (or failed) before sending a
// single byte of response: the request may not have reached the server.
// errors.Is matches it; the cause is wrapped.
var ErrNoResponse = errors.New("http1: connection closed before any response byte")

var (
	errTooManyInterim = errors.New("http1: more than " + strconv.Itoa(MaxInterimResponses) + " interim (1xx) responses")
	errResponseTooBig = errors.New("http1: response head too large")
)

type noResponseError struct{ err error }

func (e *noResponseError) Error() string   { return ErrNoResponse.Error() + ": " + e.err.Error() }
func (e *noResponseError) Unwrap() error   { return e.err }
func (e *noResponseError) Is(t error) bool { return t == ErrNoResponse }

// Init makes c the client of nc. lim bounds response heads (the default
// byte limit is DefaultMaxResponseHeaderBytes).
func (c *ClientConn) Init(nc net.Conn, lim Limits) {
	if lim.MaxHeaderBytes <= 0 {
		lim.MaxHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	c.nc, c.lim = nc, lim
	c.r.init(nc)
}

// Release gives the read buffer back to the pool. c must not be used
// after, and nothing may be reading on it (a read blocked on another
// goroutine would fill a buffer that is someone else's by then).
func (c *ClientConn) Release() {
	c.r.release()
	c.wbuf = nil
}

// Reads counts c's reads of its connection (it wraps around): when it is
// unchanged, what ReadResponse and ReadBody returned in between came in
// the bytes an earlier read brought, with no wait for the network.
func (c *ClientConn) Reads() uint32 { return c.r.reads }

// Conn is the connection c reads and writes.
func (c *ClientConn) Conn() net.Conn { return c.nc }

// WriteRequest writes the head of h (see AppendRequestHead) and, when body
// is not nil, the whole body after it in the same write (framed by f:
// Content-Length, or one chunk and trailers t when f.BodyLength < 0). With
// body nil and a body to come, the body follows with WriteBody and
// FinishBody. It reports whether the request asked to upgrade.
func (c *ClientConn) WriteRequest(h *stream.HeaderMap, f RequestFraming, body []byte, t *stream.HeaderMap) (upgrade bool, err error) {
	b, upgrade, err := c.EncodeRequest(h, f, body, t)
	if err != nil {
		return false, err
	}
	_, err = c.nc.Write(b)
	c.Sent()
	return upgrade, err
}

// EncodeRequest is WriteRequest without the write: it returns the bytes
// to send, in c's write buffer, for a caller that writes them its own way
// (the upstream pool writes and waits for the answer in one step); Sent
// says they are out.
func (c *ClientConn) EncodeRequest(h *stream.HeaderMap, f RequestFraming, body []byte, t *stream.HeaderMap) (out []byte, upgrade bool, err error) {
	b, upgrade, err := AppendRequestHead(c.wbuf[:0], h, f)
	if err != nil {
		return nil, false, err
	}
	// An empty body with a zero length (the proxy's GET) adds nothing.
	if body != nil && (len(body) != 0 || f.BodyLength != 0) {
		if b, err = appendWholeBody(b, f, body, t); err != nil {
			return nil, false, err
		}
	}
	c.wbuf = b
	return b, upgrade, nil
}

// appendWholeBody appends a request body held whole after its head: as
// it is for a known length, one chunk and trailers t when chunked. Out of
// line: the plain request has no body, and EncodeRequest's frame, on the
// deepest part of the proxy's stack, stays smaller.
//
//go:noinline
func appendWholeBody(b []byte, f RequestFraming, body []byte, t *stream.HeaderMap) ([]byte, error) {
	if f.BodyLength >= 0 && int64(len(body)) != f.BodyLength {
		return nil, &HeadError{"body length differs from the framing's"}
	}
	if f.BodyLength < 0 {
		if len(body) > 0 {
			b = AppendChunkHeader(b, len(body))
			b = append(b, body...)
			b = append(b, crlf...)
		}
		var err error
		if b, err = AppendTrailers(b, t); err != nil {
			return nil, err
		}
	} else {
		b = append(b, body...)
	}
	return b, nil
}

// Sent releases a large write buffer once EncodeRequest's bytes are out.
func (c *ClientConn) Sent() {
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // a large body is not kept for the next request
	}
}

// WriteBody writes body bytes after a head written without its body:
// raw for a known length, one chunk when chunked.
func (c *ClientConn) WriteBody(p []byte, chunked bool) error {
	if len(p) == 0 {
		return nil
	}
	if !chunked {
		_, err := c.nc.Write(p)
		return err
	}
	b := AppendChunkHeader(c.wbuf[:0], len(p))
	if len(p) <= 16<<10 {
		b = append(b, p...)
		b = append(b, crlf...)
		c.wbuf = b
		_, err := c.nc.Write(b)
		return err
	}
	c.wbuf = b
	bufs := net.Buffers{b, p, crlf}
	_, err := bufs.WriteTo(c.nc)
	return err
}

// FinishBody ends a chunked body with trailers t (nil for none); a body of
// known length needs nothing.
func (c *ClientConn) FinishBody(chunked bool, t *stream.HeaderMap) error {
	if !chunked {
		return nil
	}
	b, err := AppendTrailers(c.wbuf[:0], t)
	if err != nil {
		return err
	}
	c.wbuf = b
	_, err = c.nc.Write(b)
	return err
}

// ReadResponse reads the response to a request (head says it was a HEAD
// request): interim 1xx responses other than 101 are skipped, at most
// MaxInterimResponses. The response and its header slices are valid until
// the next ReadResponse. An error before any response byte wraps
// ErrNoResponse; any error leaves the connection unusable.
func (c *ClientConn) ReadResponse(head bool) (*Response, error) {
	c.bodyMode, c.bodyErr, c.bodyEnded = bodyNone, nil, false
	budget := c.lim.headerBytes()
	first := true
	for interim := 0; ; interim++ {
		if interim > MaxInterimResponses {
			return nil, errTooManyInterim
		}
		c.r.startRequest()
		n, err := c.readHead(budget, first)
		if err != nil {
			return nil, err
		}
		first = false
		budget -= n
		if c.resp.Status >= 200 || c.resp.Status == http.StatusSwitchingProtocols {
			break
		}
	}
	c.resp.frame(head)
	switch {
	case c.resp.Status == http.StatusSwitchingProtocols:
	case c.resp.Chunked:
		c.bodyMode = bodyFramed
		c.resetBody(true, -1)
	case c.resp.ContentLength > 0 && !head && c.resp.Status != http.StatusNotModified && c.resp.Status != http.StatusNoContent:
		c.bodyMode = bodyFramed
		c.resetBody(false, c.resp.ContentLength)
	case c.resp.ContentLength < 0:
		c.bodyMode = bodyToEOF
	}
	if c.bodyMode == bodyNone {
		c.bodyEnded = true
		if head || c.resp.Status == http.StatusNotModified || c.resp.Status == http.StatusNoContent {
			c.resp.ContentLength = 0
			if head && c.resp.hasCL {
				c.resp.ContentLength = c.resp.cl
			}
		}
	}
	return &c.resp, nil
}

// readHead reads and parses one head within budget bytes.
func (c *ClientConn) readHead(budget int, first bool) (int, error) {
	if budget <= 0 {
		return 0, errResponseTooBig
	}
	lim := Limits{MaxHeaderBytes: budget, MaxHeaders: c.lim.MaxHeaders}
	scanned := -1
	for {
		buf := c.r.buffered()
		// An empty buffer (the usual case: the response not read yet)
		// holds no head; parsing it was a reset of the response's map
		// and a failed line search each exchange (~150 instructions).
		if len(buf) > 0 && (scanned < 0 || bytes.IndexByte(buf[scanned:], '\n') >= 0) {
			n, err := parseResponse(buf, &c.resp, lim)
			if err == nil {
				c.r.consume(n)
				return n, nil
			}
			if err != errNeedMore {
				return 0, headError(err)
			}
		}
		scanned = len(buf)
		if err := c.r.fill(budget + 4); err != nil {
			return 0, fillError(err, first && len(buf) == 0)
		}
	}
}

// headError is what readHead returns for a head parseResponse refused.
// Out of line, as fillError: the plain exchange never takes them.
//
//go:noinline
func headError(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusRequestHeaderFieldsTooLarge {
		return errResponseTooBig
	}
	return err
}

// fillError is what readHead returns when the read for a head failed
// (noByte: before any byte of the response came).
//
//go:noinline
func fillError(err error, noByte bool) error {
	switch {
	case err == io.ErrShortBuffer:
		return errResponseTooBig
	case noByte:
		return &noResponseError{err: err}
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}

// resetBody points the body reader at the current response's body (the
// request parser's reader, shared by both directions).
func (c *ClientConn) resetBody(chunked bool, n int64) {
	b := &c.bd
	b.start(&c.r, c.lim, chunked)
	if chunked {
		b.state = stateSize
	} else {
		b.remaining = n
	}
}

// ReadBody reads the current response's body: io.EOF at its end, with the
// last bytes when the end is known without waiting. A framing error or a
// connection that ends early (io.ErrUnexpectedEOF) is sticky.
func (c *ClientConn) ReadBody(p []byte) (int, error) {
	if c.bodyErr != nil {
		return 0, c.bodyErr
	}
	if c.bodyEnded {
		return 0, io.EOF
	}
	var n int
	var err error
	switch c.bodyMode {
	case bodyFramed:
		n, err = c.bd.Read(p)
	case bodyToEOF:
		if len(p) == 0 {
			return 0, nil
		}
		n, err = c.r.read(p)
		if n > 0 && err == io.EOF {
			err = nil // the next read says it again
		}
	default:
		err = io.EOF
	}
	switch {
	case err == io.EOF:
		c.bodyEnded = true
	case err != nil:
		c.bodyErr = err
	}
	return n, err
}

// Trailers are the trailer fields of a chunked response once ReadBody has
// returned io.EOF; nil when there were none.
func (c *ClientConn) Trailers() *stream.HeaderMap {
	if c.bodyMode != bodyFramed || !c.bd.chunked || !c.bodyEnded || c.bd.trailer.Len() == 0 {
		return nil
	}
	return &c.bd.trailer
}

// BodyEnded says the current response's body was read to its end.
func (c *ClientConn) BodyEnded() bool { return c.bodyEnded && c.bodyErr == nil }

// Reusable says the connection may carry another request: the response
// was read to its framed end, its head allowed keep-alive, and nothing
// was received past its end (those bytes would be read as the next
// request's answer, another client's). Over TLS, bytes decrypted ahead
// sit in the TLS layer; peekTLS (nil for plain text) looks there.
func (c *ClientConn) Reusable(peekTLS func() bool) bool {
	if !c.BodyEnded() || !c.resp.KeepAlive || c.bodyMode == bodyToEOF {
		return false
	}
	if len(c.r.buffered()) > 0 {
		return false
	}
	return peekTLS == nil || !peekTLS()
}

// Buffered is what was read past the response head: after a 101, the
// first bytes of the upgraded protocol.
func (c *ClientConn) Buffered() []byte { return c.r.buffered() }

// ReadAhead reads into the read buffer without blocking past the
// connection's deadline, for a check that nothing follows a response over
// TLS (tls.Conn answers a read with an expired deadline from its own
// buffers); true when bytes came.
func (c *ClientConn) ReadAhead() bool {
	c.r.startRequest()
	err := c.r.fill(c.lim.headerBytes())
	return err == nil && len(c.r.buffered()) > 0
}

// Idle gives the read buffer back to the pool while the connection waits
// for its next request (an idle connection then costs no buffer); the next
// read takes one again. Only when nothing is buffered.
func (c *ClientConn) Idle() {
	if c.r.r == c.r.w {
		c.r.release()
		c.r.r, c.r.w = 0, 0
	}
}

// ReadUpgraded reads an upgraded connection after a 101: the bytes read
// past its head first, then the connection.
func (c *ClientConn) ReadUpgraded(p []byte) (int, error) { return c.r.read(p) }
