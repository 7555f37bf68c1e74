package http1

import (
	"net"
	"net/http"
	"strconv"
	"sync"
)

// encoder frames a connection's responses, one at a time: the head, the
// body (Content-Length, chunked, or close-delimited on HTTP/1.0) and the
// trailers, in pooled buffers written with as few system calls as
// possible. The stream (server_stream.go) formats the head's fields and
// hands them over; the encoder adds the framing.
//
// mu guards it: a request body read on another goroutine may answer 400 on
// a framing error while the handler writes.
type encoder struct {
	mu sync.Mutex
	c  *conn
	q  *Request

	status int
	// headed: the status line and fields are in wbuf; committed: the
	// framing is chosen and the head complete (in wbuf or on the wire).
	headed, committed bool
	chunked           bool
	closeAfter        bool
	failed            bool // nothing more may be written
	bodyAllowed       bool
	hasDate           bool
	// trailers: the body ends with a trailer section (trailers were
	// declared or written), so it is chunked.
	trailers bool
	cl       int64 // Content-Length, -1 while unknown
	written  int64

	// wbuf and pend are pooled: the bytes to write, and the body held
	// before the head is committed. pend is taken only when a body is
	// held (a response without a Content-Length): a pool's Get and Put a
	// request for a buffer a response of known length never uses.
	wbuf, pend *[]byte
	vec        [3][]byte
	bufs       net.Buffers
}

// pendMax is how much body is held to learn its length before the head
// goes out: a small response gets a Content-Length and one write.
const pendMax = 4 << 10

func (e *encoder) reset(q *Request) {
	e.q = q
	e.status, e.headed, e.committed, e.chunked, e.closeAfter, e.failed = 0, false, false, false, false, false
	e.bodyAllowed, e.hasDate, e.trailers = false, false, false
	e.cl, e.written = -1, 0
	if e.wbuf == nil {
		e.wbuf = bufPool.Get().(*[]byte)
	}
	*e.wbuf = (*e.wbuf)[:0]
	if e.pend != nil {
		*e.pend = (*e.pend)[:0]
	}
}

// pending is the body held so far.
func (e *encoder) pending() []byte {
	if e.pend == nil {
		return nil
	}
	return *e.pend
}

// release gives the write buffers back to the pool (an idle connection
// keeps none).
func (e *encoder) release() {
	if e.wbuf != nil {
		*e.wbuf = (*e.wbuf)[:cap(*e.wbuf)]
		bufPool.Put(e.wbuf)
		e.wbuf = nil
	}
	if e.pend != nil {
		*e.pend = (*e.pend)[:cap(*e.pend)]
		bufPool.Put(e.pend)
		e.pend = nil
	}
}

// statusLine starts a head in wbuf; the caller appends the fields and
// hands the result to interim or headDone.
func (e *encoder) statusLine(code int) []byte {
	return AppendStatusLine((*e.wbuf)[:0], code)
}

// interim sends a 1xx head other than 101 at once (100 Continue, 103
// Early Hints); the final head follows later.
func (e *encoder) interim(b []byte) {
	b = append(b, crlf...)
	*e.wbuf = b[:0]
	if _, err := e.c.wc.Write(b); err != nil {
		e.failed = true
	}
}

// allowsBody says whether a response with this status carries a body.
func (e *encoder) allowsBody(code int) bool {
	return code >= 200 && code != 204 && code != 304 && string(e.q.Method) != "HEAD"
}

// allowsTrailers says whether a response with this status can end with a
// trailer section: it has a body and goes to an HTTP/1.1 client.
func (e *encoder) allowsTrailers(code int) bool {
	return e.allowsBody(code) && e.q.Minor >= 1
}

// headDone takes the final head (status line and fields, without the
// framing ones) and what its fields said: cl a declared Content-Length or
// -1, closeConn a Connection: close, trailers a Trailer declaration the
// caller wrote (allowsTrailers was true), hasDate a Date field.
func (e *encoder) headDone(b []byte, code int, cl int64, closeConn, trailers, hasDate bool) {
	*e.wbuf = b
	e.status, e.headed = code, true
	e.bodyAllowed = e.allowsBody(code)
	e.cl, e.closeAfter, e.trailers, e.hasDate = cl, e.closeAfter || closeConn, trailers, hasDate
}

// commit completes the head with the framing fields. streaming says the
// body's length is not known yet (chunked on HTTP/1.1, close-delimited on
// HTTP/1.0); otherwise what pend holds is the whole body.
func (e *encoder) commit(streaming bool) {
	// The common head, a known length on a kept-alive HTTP/1.1
	// connection with the handler's Date, here; any other the long way
	// (commitSlow, out of line), which would add the same bytes to this
	// one.
	if e.cl >= 0 && !e.trailers && e.hasDate && !e.closeAfter && e.q.KeepAlive && e.q.Minor >= 1 &&
		e.status != 204 && e.status != 101 && len(e.pending()) == 0 && !e.c.srv.shuttingDown() {
		e.committed = true
		b := append(*e.wbuf, "Content-Length: "...)
		b = strconv.AppendInt(b, e.cl, 10)
		*e.wbuf = append(b, "\r\n\r\n"...)
		return
	}
	e.commitSlow(streaming)
}

// commitSlow is commit for any response.
//
//go:noinline
func (e *encoder) commitSlow(streaming bool) {
	e.committed = true
	if e.c.srv.shuttingDown() || !e.q.KeepAlive {
		e.closeAfter = true
	}
	if e.trailers {
		streaming, e.cl = true, -1
	}
	if !streaming && e.cl < 0 && e.bodyAllowed {
		e.cl = int64(len(e.pending()))
	}
	if e.cl < 0 && e.bodyAllowed {
		if e.q.Minor >= 1 {
			e.chunked = true
		} else {
			e.closeAfter = true
		}
	}
	b := *e.wbuf
	if !e.hasDate {
		b = AppendField(b, "Date", date.get())
	}
	switch {
	case e.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case e.cl >= 0 && e.status != 204:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, e.cl, 10)
		b = append(b, crlf...)
	}
	switch {
	case e.status == 101:
		// The handler's Connection: upgrade stands; the connection is
		// the handler's once the head is out.
	case e.closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case e.q.Minor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, crlf...)
	*e.wbuf = b
	if p := e.pending(); len(p) > 0 {
		*e.pend = p[:0]
		e.writeBody(p)
	}
}

// hold keeps p back while the body's length may still be learnt; false
// when p does not fit and the head must be committed first.
func (e *encoder) hold(p []byte) bool {
	if e.cl >= 0 || e.trailers || len(e.pending())+len(p) > pendMax {
		return false
	}
	if e.pend == nil {
		e.pend = bufPool.Get().(*[]byte)
		*e.pend = (*e.pend)[:0]
	}
	*e.pend = append(*e.pend, p...)
	e.written += int64(len(p))
	return true
}

// writeBody frames p (a chunk when chunked) after what wbuf holds; small
// pieces are copied, large ones go out with wbuf in one writev.
func (e *encoder) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	b := *e.wbuf
	if e.chunked {
		b = AppendChunkHeader(b, len(p))
	}
	if len(b)+len(p)+2 <= cap(b) {
		b = append(b, p...)
		if e.chunked {
			b = append(b, crlf...)
		}
		*e.wbuf = b
		return nil
	}
	return e.writeLarge(b, p)
}

// writeLarge writes what wbuf holds (b) and p, with the chunk's end when
// chunked, in one writev. Out of line: a proxied response's body is
// mostly small enough to be copied.
//
//go:noinline
func (e *encoder) writeLarge(b, p []byte) error {
	e.vec[0], e.vec[1] = b, p
	e.bufs = e.vec[:2]
	if e.chunked {
		e.vec[2] = crlf
		e.bufs = e.vec[:3]
	}
	*e.wbuf = b[:0]
	_, err := e.bufs.WriteTo(e.c.wc)
	e.vec = [3][]byte{}
	if err != nil {
		e.failed = true
	}
	return err
}

func (e *encoder) flushLocked() error {
	b := *e.wbuf
	if len(b) == 0 || e.failed {
		return nil
	}
	*e.wbuf = b[:0]
	// wc, not nc: a listener's wrapper (WriteThrough) passes writes on
	// unchanged, and going straight to the connection under it saves a
	// call and its code lines on every response.
	if _, err := e.c.wc.Write(b); err != nil {
		e.failed = true
		return err
	}
	return nil
}

// finish ends the response: the last chunk with the trailers
// appendTrailers adds (nil for none) when chunked, then everything held
// goes out. A declared length not reached closes the connection after.
func (e *encoder) finish(appendTrailers func([]byte) []byte) error {
	if !e.committed {
		e.commit(false)
	}
	if e.chunked {
		b := append(*e.wbuf, "0\r\n"...)
		if appendTrailers != nil {
			b = appendTrailers(b)
		}
		*e.wbuf = append(b, crlf...)
	} else if e.bodyAllowed && e.cl >= 0 && e.written < e.cl {
		// The handler declared more than it wrote: the framing is broken
		// for the client, which only the connection's end can tell.
		e.closeAfter = true
	}
	return e.flushLocked()
}

// sendContinue answers Expect: 100-continue when the handler first reads
// the body.
func (e *encoder) sendContinue() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.committed || e.failed {
		return
	}
	if _, err := e.c.wc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
		e.failed = true
	}
}

// failRequest is a framing error in the request body: the client gets
// 400 now if nothing of the response went out yet, the request's context
// ends (so nothing upstream waits for the rest), and the connection
// closes once the handler returns.
func (e *encoder) failRequest(err *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed {
		return
	}
	e.failed, e.closeAfter = true, true
	if !e.committed {
		body := statusBody(err.Status)
		b := AppendStatusLine((*e.wbuf)[:0], err.Status)
		b = AppendField(b, "Content-Type", "text/plain; charset=utf-8")
		b = AppendField(b, "Content-Length", itoa(len(body)))
		b = append(b, "Connection: close\r\n\r\n"...)
		b = append(b, body...)
		*e.wbuf = b[:0]
		e.c.nc.Write(b)
		if cw, ok := e.c.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	e.c.cancel()
}

// abort ends the response after what was written (a handler that
// panicked or reset the stream): no terminating chunk, so the client sees
// the response cut.
func (e *encoder) abort() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushLocked()
	e.failed = true
}

// validFieldName says whether a handler's field name can be written: a
// token (RFC 9110 section 5.1). Others are dropped, as net/http's server
// drops them: a space or colon in a name would make the head malformed,
// or a different field, for the client.
func validFieldName(name []byte) bool { return validToken(name) }

// appendField is AppendField for a header map's fields.
// Its callers pass only valid field names (validFieldName: tokens, no
// control characters), so the name is copied as it is.
func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = appendClean(dst, value)
	return append(dst, "\r\n"...)
}

func statusBody(code int) string { return http.StatusText(code) + "\n" }

func itoa(n int) string { return strconv.Itoa(n) }
