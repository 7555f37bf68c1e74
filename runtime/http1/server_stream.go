package http1

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// serverStream is the native stream.ServerStream: one per connection,
// reused for each of its requests, so a keep-alive request costs no
// allocation. The request's header map is the parsed head itself (slices
// of the read buffer); the response goes through the connection's
// encoder. Everything it lends is valid until ServeStream returns, and
// the stream must not be used after that: it is already the next
// request's.
type serverStream struct {
	c    *conn
	info stream.ConnectionInfo
	// body guards ReadBody; the encoder's mu guards the writes.
	body bodyGuard
	// ended: the response is complete (end of stream, trailers, or
	// reset).
	ended bool
	reset bool
}

var _ stream.ServerStream = (*serverStream)(nil)

// connIDs numbers connections for ConnectionInfo.ID when the server has
// no ConnectionID of its own.
var connIDs atomic.Uint64

func (srv *Server) nextConnectionID() uint64 {
	if srv.ConnectionID != nil {
		return srv.ConnectionID()
	}
	return connIDs.Add(1)
}

// The schemes a connection's requests carry as :scheme. Full slice
// expressions: a value of the map must never be appended to in place,
// and one that did would copy rather than write into the next request's.
var schemeHTTP, schemeHTTPS = []byte("http")[:4:4], []byte("https")[:5:5]

func (s *serverStream) init(c *conn) {
	s.c = c
	s.info = stream.ConnectionInfo{
		ID:     c.srv.nextConnectionID(),
		Scheme: "http",
		Remote: c.nc.RemoteAddr(),
		Local:  c.nc.LocalAddr(),
		TLS:    c.tls,
	}
	s.info.FormatAddresses()
	if c.tls != nil {
		s.info.Scheme = "https"
	}
}

// serveStream runs the stream handler for the parsed request and ends
// the response it left unfinished; false ends the connection.
func (c *conn) serveStream() bool {
	s := &c.st
	s.body.over, s.ended, s.reset = false, false, false
	s.info.Protocol = "HTTP/1.1"
	if c.req.Minor == 0 {
		s.info.Protocol = "HTTP/1.0"
	}
	c.startWatch()
	if c.bd.Done() {
		c.armWatch()
	}
	ok := c.runStream()
	c.stopWatch()
	if c.hijacked {
		s.body.expire()
		return false
	}
	if ok {
		ok = s.finish()
	}
	return c.endRequest(ok, &s.body)
}

func (c *conn) runStream() (ok bool) {
	defer c.recoverHandler(&ok)
	c.srv.StreamHandler.ServeStream(&c.st)
	return true
}

// finish completes what the handler left: a response without a head is a
// 500 (a connection manager always answers, so this is a bug caught), a
// body without its end is ended as it stands. False: the connection
// cannot continue.
func (s *serverStream) finish() bool {
	e := &s.c.enc
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed || s.reset {
		return false
	}
	if s.ended {
		return true
	}
	if !e.headed {
		e.headDone(e.statusLine(http.StatusInternalServerError), http.StatusInternalServerError, 0, true, false, false)
	}
	return e.finish(nil) == nil
}

func (s *serverStream) RequestHeaders() *stream.HeaderMap { return &s.c.req.Header }

func (s *serverStream) RequestBodyLength() int64 { return s.c.req.ContentLength }

func (s *serverStream) ReadBody(p []byte) (int, error) {
	s.body.mu.Lock()
	defer s.body.mu.Unlock()
	if s.body.over {
		return 0, errBodyOver
	}
	return s.c.readBody(p)
}

func (s *serverStream) RequestTrailers() *stream.HeaderMap {
	if bd := &s.c.bd; bd.Done() && bd.trailer.Len() > 0 {
		return &bd.trailer
	}
	return nil
}

var (
	errStreamEnded   = errors.New("http1: response already complete")
	errNoHead        = errors.New("http1: response body or trailers before its head")
	errHeadTwice     = errors.New("http1: response head written twice")
	errBadStatus     = errors.New("http1: response head without a valid :status")
	errBodyTooLong   = errors.New("http1: response body longer than its content-length")
	errNotUpgrade    = errors.New("http1: upgrade without a 101 response written")
	errStreamWriting = net.ErrClosed
)

// check says whether a write may go on; the caller holds enc.mu.
func (s *serverStream) check() error {
	switch {
	case s.c.enc.failed || s.reset:
		return errStreamWriting
	case s.ended:
		return errStreamEnded
	}
	return nil
}

// WriteHeaders formats the head now (the map may change after the call):
// the codec writes content-length, transfer-encoding and connection
// itself from what the map says, keeps a trailer declaration only where
// trailers can follow, and holds the head until the body's length is
// known, Flush, or the end.
func (s *serverStream) WriteHeaders(h *stream.HeaderMap, endStream bool) error {
	e := &s.c.enc
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	if e.headed {
		return errHeadTwice
	}
	// The common head here: a final status, fields checked when they
	// were parsed, Date and Content-Length the only ones the codec looks
	// at. Any other head the long way (writeHeadersSlow, out of line with
	// the cases the plain response never takes), from its start.
	v, _ := h.GetPseudo(stream.PseudoStatus)
	code, ok := parseStatus(v)
	if !ok || code < 200 {
		return s.writeHeadersSlow(h, endStream)
	}
	cl, hasDate := int64(-1), false
	b := e.statusLine(code)
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		if !h.Checked(i) {
			if len(name) > 0 && name[0] == ':' {
				continue // a pseudo-header: never a valid field name
			}
			return s.writeHeadersSlow(h, endStream)
		}
		if len(name) > 0 && len(name) < 32 && responseFieldNames[name[0]]>>len(name)&1 != 0 {
			switch string(name) {
			case "date":
				hasDate = true
			case "content-length":
				if n, ok := parseContentLength(value); ok {
					cl = n
				}
				continue
			default:
				return s.writeHeadersSlow(h, endStream)
			}
		}
		b = appendParsedField(b, name, value)
	}
	e.headDone(b, code, cl, false, false, hasDate)
	switch {
	case endStream:
		s.ended = true
		return e.finish(nil)
	case e.cl >= 0 || !e.bodyAllowed:
		e.commit(false)
	}
	return nil
}

// responseFieldNames has, for a field name's first byte, bit n set when
// a name of that byte and length n is one WriteHeaders' common head
// looks at (date, content-length) or leaves to the long way.
var responseFieldNames = func() (t [256]uint32) {
	for _, s := range []string{"date", "content-length", "transfer-encoding", "keep-alive", "proxy-connection", "connection", "trailer"} {
		t[s[0]] |= 1 << len(s)
	}
	return t
}()

// writeHeadersSlow is WriteHeaders for any head, under the encoder's
// lock.
//
//go:noinline
func (s *serverStream) writeHeadersSlow(h *stream.HeaderMap, endStream bool) error {
	e := &s.c.enc
	if err := s.check(); err != nil {
		return err
	}
	if e.headed {
		return errHeadTwice
	}
	v, _ := h.GetPseudo(stream.PseudoStatus)
	code, ok := parseStatus(v)
	if !ok {
		return errBadStatus
	}
	informational := code < 200 && code != http.StatusSwitchingProtocols
	trailersOK := !informational && e.allowsTrailers(code)
	var (
		cl                          = int64(-1)
		closeConn, trailer, hasDate bool
	)
	b := e.statusLine(code)
	for i := 0; i < h.Len(); i++ {
		name, value := h.At(i)
		checked := h.Checked(i)                // parsed from an upstream's head, unchanged
		if !checked && !validFieldName(name) { // pseudo-headers included
			continue
		}
		switch string(name) {
		case "content-length":
			if n, ok := parseContentLength(value); ok && !informational {
				cl = n
			}
			continue
		case "transfer-encoding", "keep-alive", "proxy-connection":
			continue
		case "connection":
			forEachToken(value, func(tok []byte) {
				if asciiEqualFold(tok, "close") {
					closeConn = true
				}
			})
			if code != http.StatusSwitchingProtocols {
				continue
			}
		case "trailer":
			if !trailersOK {
				continue
			}
			trailer = true
		case "date":
			hasDate = true
		}
		if checked {
			b = appendParsedField(b, name, value)
		} else {
			b = appendField(b, name, value)
		}
	}
	if informational {
		e.interim(b)
		return nil
	}
	e.headDone(b, code, cl, closeConn, trailer, hasDate)
	switch {
	case endStream:
		s.ended = true
		return e.finish(nil)
	case code == http.StatusSwitchingProtocols:
		// The 101 goes out before the connection is handed over.
		e.commit(false)
		return e.flushLocked()
	case e.cl >= 0 || !e.bodyAllowed:
		e.commit(false)
	}
	return nil
}

// lockBody locks the encoder for a write after the head; the caller
// unlocks it, error or not.
func (s *serverStream) lockBody() (*encoder, error) {
	e := &s.c.enc
	e.mu.Lock()
	err := s.check()
	if err == nil && !e.headed {
		err = errNoHead
	}
	return e, err
}

func (s *serverStream) WriteBody(p []byte, endStream bool) error {
	e, err := s.lockBody()
	defer e.mu.Unlock()
	if err != nil {
		return err
	}
	if e.bodyAllowed {
		if !e.committed {
			switch {
			case e.hold(p):
				p = nil
			case endStream && !e.trailers:
				// The whole body is known now: a Content-Length, not
				// chunks, however large.
				e.cl = int64(len(e.pending()) + len(p))
				e.commit(false)
			default:
				e.commit(true)
			}
		}
		if len(p) > 0 {
			if e.cl >= 0 && e.written+int64(len(p)) > e.cl {
				return errBodyTooLong
			}
			e.written += int64(len(p))
			if err := e.writeBody(p); err != nil {
				return err
			}
		}
	}
	// A body where none is allowed (HEAD, 204, 304) is dropped, as the
	// upstream's would be.
	if endStream {
		s.ended = true
		return e.finish(nil)
	}
	return nil
}

// WriteTrailers ends the body with t when the response is chunked (or can
// still become so); with a Content-Length, or to an HTTP/1.0 client, the
// trailers are dropped (Envoy does the same).
func (s *serverStream) WriteTrailers(t *stream.HeaderMap) error {
	e, err := s.lockBody()
	defer e.mu.Unlock()
	if err != nil {
		return err
	}
	if !e.committed && e.cl < 0 && e.allowsTrailers(e.status) {
		e.trailers = true
	}
	s.ended = true
	return e.finish(func(b []byte) []byte {
		for i := 0; i < t.Len(); i++ {
			name, value := t.At(i)
			if !validFieldName(name) || framingField(name) {
				continue
			}
			b = appendField(b, name, value)
		}
		return b
	})
}

func (s *serverStream) Flush() error {
	e := &s.c.enc
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	if !e.headed {
		return nil
	}
	if !e.committed {
		e.commit(true)
	}
	return e.flushLocked()
}

// Reset closes the connection after what was written. It may come from
// another goroutine than the handler's while a write is blocked on a
// client that stopped reading (a stream timeout): the write is ended
// first.
func (s *serverStream) Reset(stream.ResetReason) {
	e := &s.c.enc
	ended := false
	if !e.mu.TryLock() {
		s.c.nc.SetWriteDeadline(aLongTimeAgo)
		ended = true
		e.mu.Lock()
	}
	if s.c.hijacked {
		// Upgraded meanwhile: the connection is the handler's now.
		if ended {
			s.c.nc.SetWriteDeadline(time.Time{})
		}
		e.mu.Unlock()
		return
	}
	// A read blocked on the client (the body) ends too: nothing more is
	// wanted from this connection.
	s.c.nc.SetReadDeadline(aLongTimeAgo)
	if !e.failed && !s.reset {
		s.c.nc.SetWriteDeadline(time.Now().Add(resetFlushTimeout))
		e.flushLocked()
	}
	e.failed, s.reset = true, true
	e.mu.Unlock()
	s.c.cancel()
}

// resetFlushTimeout bounds the write of what a reset stream held.
const resetFlushTimeout = 5 * time.Second

// Context ends when the client leaves, the connection closes or the
// stream is reset: each of these ends the connection, so the stream's
// context is the connection's (no context per request).
func (s *serverStream) Context() context.Context { return s.c.ctx }

func (s *serverStream) Connection() *stream.ConnectionInfo { return &s.info }

// Upgrade hands the connection over once a 101 went out, with a copy of
// the bytes the client sent past the request head.
func (s *serverStream) Upgrade() (net.Conn, []byte, error) {
	e := &s.c.enc
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed || s.reset {
		return nil, nil, errStreamWriting
	}
	if e.status != http.StatusSwitchingProtocols || !e.committed {
		return nil, nil, errNotUpgrade
	}
	if err := e.flushLocked(); err != nil {
		return nil, nil, err
	}
	s.ended = true
	nc, rest := s.c.handOver()
	return nc, rest, nil
}

// parseStatus reads a :status value: three digits, 100 to 999.
func parseStatus(v []byte) (int, bool) {
	if len(v) != 3 || v[0] < '1' || v[0] > '9' || !isDigit(v[1]) || !isDigit(v[2]) {
		return 0, false
	}
	return int(v[0]-'0')*100 + int(v[1]-'0')*10 + int(v[2]-'0'), true
}
