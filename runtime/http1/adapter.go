package http1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The net/http adapter: until the connection manager takes requests in
// the stream model, a parsed request becomes an *http.Request and the
// handler answers through an http.ResponseWriter that supports Flush,
// Hijack, trailers (declared with "Trailer" or set with
// http.TrailerPrefix), 1xx responses and http.ErrAbortHandler.

var chunkedTE = []string{"chunked"}

// newRequest builds the handler's view of c.req: its strings are one
// allocation (names canonicalised on the way), its header one map.
func (c *conn) newRequest() (*http.Request, error) {
	if c.tmpl == nil {
		c.tmpl = (&http.Request{RemoteAddr: c.remoteAddr, TLS: c.tls, ProtoMajor: 1}).WithContext(c.ctx)
	}
	q := &c.req
	hm := &q.Header
	total, n := len(q.Target)+len(q.Authority)+len(q.Method), 0
	for i := 0; i < hm.Len(); i++ {
		name, value := hm.At(i)
		if name[0] == ':' {
			continue
		}
		n++
		total += len(name) + len(value)
	}
	var sb strings.Builder
	sb.Grow(total)
	sb.Write(q.Target)
	sb.Write(q.Authority)
	sb.Write(q.Method)
	type span struct{ ns, ne, ve int }
	var stack [32]span
	spans := stack[:0]
	for i := 0; i < hm.Len(); i++ {
		name, value := hm.At(i)
		if name[0] == ':' {
			continue
		}
		ns := sb.Len()
		upper := true
		for _, ch := range name {
			if upper && 'a' <= ch && ch <= 'z' {
				ch -= 'a' - 'A'
			}
			upper = ch == '-'
			sb.WriteByte(ch)
		}
		ne := sb.Len()
		sb.Write(value)
		spans = append(spans, span{ns, ne, sb.Len()})
	}
	s := sb.String()
	target := s[:len(q.Target)]
	authority := s[len(q.Target) : len(q.Target)+len(q.Authority)]
	method := methodString(q.Method, s[len(q.Target)+len(q.Authority):len(q.Target)+len(q.Authority)+len(q.Method)])

	r := new(http.Request)
	*r = *c.tmpl
	r.Method = method
	r.RequestURI = target
	r.Host = authority
	r.ProtoMinor = q.Minor
	r.Proto = "HTTP/1.1"
	if q.Minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.Close = !q.KeepAlive
	var err error
	if r.URL, err = requestURL(r.Method, target, q); err != nil {
		return nil, refuse(http.StatusBadRequest, "invalid request target")
	}
	r.Header = make(http.Header, n)
	vals := make([]string, len(spans))
	for i, sp := range spans {
		key := s[sp.ns:sp.ne]
		vals[i] = s[sp.ne:sp.ve]
		if old, ok := r.Header[key]; ok {
			r.Header[key] = append(old, vals[i])
		} else {
			r.Header[key] = vals[i : i+1 : i+1]
		}
	}
	r.ContentLength = q.ContentLength
	if q.Chunked {
		r.TransferEncoding = chunkedTE
		if names, ok := r.Header["Trailer"]; ok {
			r.Trailer = make(http.Header)
			for _, v := range names {
				for _, k := range strings.Split(v, ",") {
					if k = strings.TrimSpace(k); k != "" {
						r.Trailer[http.CanonicalHeaderKey(k)] = nil
					}
				}
			}
		}
	}
	if c.bd.Done() {
		r.Body = http.NoBody
	} else {
		c.w.body = &requestBody{c: c, r: r}
		r.Body = c.w.body
	}
	return r, nil
}

func methodString(b []byte, s string) string {
	switch string(b) {
	case "GET":
		return http.MethodGet
	case "POST":
		return http.MethodPost
	case "HEAD":
		return http.MethodHead
	case "PUT":
		return http.MethodPut
	case "DELETE":
		return http.MethodDelete
	case "OPTIONS":
		return http.MethodOptions
	case "PATCH":
		return http.MethodPatch
	}
	return s
}

// requestURL is net/http's reading of the target: a plain origin-form
// path needs no unescaping and no parse.
func requestURL(method, target string, q *Request) (*url.URL, error) {
	if method == http.MethodConnect && target[0] != '/' {
		return &url.URL{Host: target}, nil
	}
	if target[0] == '/' && !strings.ContainsAny(target, "%#") {
		u := &url.URL{Path: target}
		if i := strings.IndexByte(target, '?'); i >= 0 {
			u.Path, u.RawQuery = target[:i], target[i+1:]
			u.ForceQuery = u.RawQuery == ""
		}
		return u, nil
	}
	return url.ParseRequestURI(target)
}

// requestBody is the handler's request body. Reads can come from another
// goroutine than the handler's (a proxy streams the body upstream while
// it waits for the response), so they hold mu; once the request is over
// the body reads nothing more, and a late reader cannot take bytes of the
// next request.
type requestBody struct {
	mu      sync.Mutex
	c       *conn
	r       *http.Request
	closed  bool // by the handler
	expired bool // the request is over
}

var errBodyOver = errors.New("http1: request body read after the request ended")

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.expired {
		return 0, errBodyOver
	}
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.read(p)
}

func (b *requestBody) read(p []byte) (int, error) {
	n, err := b.c.bd.Read(p)
	if err == io.EOF && b.c.bd.trailer.Len() > 0 && !b.expired {
		if b.r.Trailer == nil {
			b.r.Trailer = make(http.Header)
		}
		for name, value := range b.c.bd.trailer.All() {
			k := http.CanonicalHeaderKey(string(name))
			b.r.Trailer[k] = append(b.r.Trailer[k], string(value))
		}
		b.c.bd.trailer.Reset()
	}
	if err == io.EOF {
		b.c.armWatch()
	}
	var e *Error
	if err != nil && errors.As(err, &e) {
		b.c.w.failRequest(e)
	}
	return n, err
}

func (b *requestBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// drain reads and drops the rest of the body (up to max) for keep-alive
// and marks the body over.
func (b *requestBody) drain(max int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expired = true
	var buf [4 << 10]byte
	var total int64
	for !b.c.bd.Done() {
		n, err := b.c.bd.Read(buf[:])
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil || total > max {
			return false
		}
	}
	return true
}

func (b *requestBody) expire() {
	b.mu.Lock()
	b.expired = true
	b.mu.Unlock()
}

// response is the http.ResponseWriter, reused for every request of a
// connection. mu guards it: a request body read on another goroutine may
// answer 400 on a framing error while the handler writes.
type response struct {
	mu     sync.Mutex
	c      *conn
	req    *http.Request
	q      *Request
	body   *requestBody
	header http.Header

	status      int
	wroteHeader bool
	committed   bool // the head is in wbuf or on the wire
	chunked     bool
	closeAfter  bool
	failed      bool // nothing more may be written
	// writeDeadline: the handler set one, to be cleared after the request.
	writeDeadline atomic.Bool
	bodyAllowed   bool
	cl            int64 // declared Content-Length, -1 unknown
	written       int64
	trailers      []string

	wbuf, pend *[]byte // pooled: bytes to write, body held before commit
	vec        [3][]byte
	bufs       net.Buffers
}

// pendMax is how much body is held to learn its length before the head
// goes out: a small response gets a Content-Length and one write.
const pendMax = 4 << 10

func (w *response) reset(r *http.Request, q *Request) {
	if w.header == nil {
		w.header = make(http.Header)
	}
	clear(w.header)
	w.req, w.q = r, q
	if w.writeDeadline.Swap(false) {
		w.c.nc.SetWriteDeadline(time.Time{})
	}
	w.status, w.wroteHeader, w.committed, w.chunked, w.closeAfter, w.failed = 0, false, false, false, false, false
	w.cl, w.written, w.trailers = -1, 0, w.trailers[:0]
	if w.wbuf == nil {
		w.wbuf = bufPool.Get().(*[]byte)
		w.pend = bufPool.Get().(*[]byte)
	}
	*w.wbuf = (*w.wbuf)[:0]
	*w.pend = (*w.pend)[:0]
}

func (w *response) release() {
	if w.wbuf != nil {
		*w.wbuf, *w.pend = (*w.wbuf)[:cap(*w.wbuf)], (*w.pend)[:cap(*w.pend)]
		bufPool.Put(w.wbuf)
		bufPool.Put(w.pend)
		w.wbuf, w.pend = nil, nil
	}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeader(code)
}

func (w *response) writeHeader(code int) {
	if w.wroteHeader || w.failed {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An interim response goes out at once, with the fields set so
		// far (103 Early Hints); they stay for the final one.
		b := AppendStatusLine((*w.wbuf)[:0], code)
		for k, vs := range w.header {
			for _, v := range vs {
				b = AppendField(b, k, v)
			}
		}
		b = append(b, crlf...)
		*w.wbuf = b[:0]
		if _, err := w.c.nc.Write(b); err != nil {
			w.failed = true
		}
		return
	}
	w.status, w.wroteHeader = code, true
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			w.header.Del("Content-Length")
		}
	}
	w.bodyAllowed = w.req.Method != http.MethodHead && code != http.StatusNoContent && code != http.StatusNotModified && code >= 200
}

func (w *response) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return 0, net.ErrClosed
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if !w.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if !w.committed {
		if w.cl < 0 && len(*w.pend)+len(p) <= pendMax {
			*w.pend = append(*w.pend, p...)
			w.written += int64(len(p))
			return len(p), nil
		}
		w.commit(true)
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// commit formats the head into wbuf. streaming says the body's length is
// not known yet (chunked on HTTP/1.1, close-delimited on HTTP/1.0).
func (w *response) commit(streaming bool) {
	w.committed = true
	h := w.header
	if w.c.srv.shuttingDown() || !w.q.KeepAlive {
		w.closeAfter = true
	}
	if vs, ok := h["Connection"]; ok {
		for _, v := range vs {
			forEachToken([]byte(v), func(tok []byte) {
				if asciiEqualFold(tok, "close") {
					w.closeAfter = true
				}
			})
		}
	}
	if tr, ok := h["Trailer"]; ok && len(tr) > 0 && w.bodyAllowed && w.q.Minor >= 1 {
		for _, v := range tr {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
		streaming, w.cl = true, -1
	}
	if !streaming && w.cl < 0 && w.bodyAllowed {
		w.cl = int64(len(*w.pend))
	}
	if w.cl < 0 && w.bodyAllowed {
		if w.q.Minor >= 1 {
			w.chunked = true
		} else {
			w.closeAfter = true
		}
	}
	b := AppendStatusLine((*w.wbuf)[:0], w.status)
	for k, vs := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			b = AppendField(b, k, v)
		}
	}
	if _, ok := h["Date"]; !ok {
		b = AppendField(b, "Date", date.get())
	}
	switch {
	case w.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		if len(w.trailers) > 0 {
			b = AppendField(b, "Trailer", strings.Join(w.trailers, ", "))
		}
	case w.cl >= 0 && (w.bodyAllowed || h.Get("Content-Length") != "") && w.status != http.StatusNoContent:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.cl, 10)
		b = append(b, crlf...)
	}
	if w.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	} else if w.q.Minor == 0 {
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, crlf...)
	*w.wbuf = b
	if p := *w.pend; len(p) > 0 {
		*w.pend = p[:0]
		w.writeBody(p)
	}
}

// writeBody frames p (a chunk when chunked) after what wbuf holds; small
// pieces are copied, large ones go out with wbuf in one writev.
func (w *response) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	b := *w.wbuf
	if w.chunked {
		b = AppendChunkHeader(b, len(p))
	}
	if len(b)+len(p)+2 <= cap(b) {
		b = append(b, p...)
		if w.chunked {
			b = append(b, crlf...)
		}
		*w.wbuf = b
		return nil
	}
	w.vec[0], w.vec[1] = b, p
	w.bufs = w.vec[:2]
	if w.chunked {
		w.vec[2] = crlf
		w.bufs = w.vec[:3]
	}
	*w.wbuf = b[:0]
	_, err := w.bufs.WriteTo(w.c.wc)
	w.vec = [3][]byte{}
	if err != nil {
		w.failed = true
	}
	return err
}

func (w *response) flushLocked() error {
	b := *w.wbuf
	if len(b) == 0 || w.failed {
		return nil
	}
	*w.wbuf = b[:0]
	if _, err := w.c.nc.Write(b); err != nil {
		w.failed = true
		return err
	}
	return nil
}

// Flush sends what was written, committing the head as streaming.
func (w *response) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	w.flushLocked()
}

// FlushError is Flush for http.ResponseController.
func (w *response) FlushError() error {
	w.Flush()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return net.ErrClosed
	}
	return nil
}

// Hijack hands the connection to the handler with whatever the client
// sent beyond the request head (an upgraded protocol's first bytes).
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return nil, nil, net.ErrClosed
	}
	if w.committed {
		w.flushLocked()
	}
	c := w.c
	c.stopWatch()
	c.hijacked = true
	c.srv.track(c, false) // the handler owns it now; Shutdown no longer waits for it
	c.nc.SetDeadline(time.Time{})
	var rd io.Reader = c.nc
	if b := c.r.buffered(); len(b) > 0 {
		rd = &replayConn{Conn: c.nc, buf: append([]byte(nil), b...)}
		c.r.consume(len(b))
	}
	return c.nc, bufio.NewReadWriter(bufio.NewReader(rd), bufio.NewWriter(c.nc)), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController (a
// handler ends blocked I/O with them). The connection loop sets its own
// read deadlines before every read; a write deadline is cleared after the
// request.
func (w *response) SetReadDeadline(t time.Time) error { return w.c.nc.SetReadDeadline(t) }

// Neither takes mu: their point is to end a write blocked while holding it.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.writeDeadline.Store(true)
	return w.c.nc.SetWriteDeadline(t)
}

// sendContinue answers Expect: 100-continue when the handler first reads
// the body.
func (w *response) sendContinue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed || w.failed {
		return
	}
	if _, err := w.c.nc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
		w.failed = true
	}
}

// failRequest is a framing error in the request body: the client gets
// 400 now if nothing of the response went out yet, the request's context
// ends (so nothing upstream waits for the rest), and the connection
// closes once the handler returns.
func (w *response) failRequest(e *Error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return
	}
	w.failed, w.closeAfter = true, true
	if !w.committed {
		body := http.StatusText(e.Status) + "\n"
		b := AppendStatusLine((*w.wbuf)[:0], e.Status)
		b = AppendField(b, "Content-Type", "text/plain; charset=utf-8")
		b = AppendField(b, "Content-Length", itoa(len(body)))
		b = append(b, "Connection: close\r\n\r\n"...)
		b = append(b, body...)
		*w.wbuf = b[:0]
		w.c.nc.Write(b)
		if cw, ok := w.c.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	w.c.cancel()
}

// abort ends the response after what was written: the handler panicked
// (http.ErrAbortHandler). No terminating chunk, so the client sees the
// response cut.
func (w *response) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	w.failed = true
}

// finish completes the response after the handler returned; false means
// the connection cannot continue.
func (w *response) finish() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return false
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	if w.chunked {
		b := append(*w.wbuf, "0\r\n"...)
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				b = AppendField(b, k, v)
			}
		}
		for k, vs := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vs {
					b = AppendField(b, name, v)
				}
			}
		}
		*w.wbuf = append(b, crlf...)
	} else if w.bodyAllowed && w.cl >= 0 && w.written < w.cl {
		// The handler declared more than it wrote: the framing is broken
		// for the client, which only the connection's end can tell.
		w.closeAfter = true
	}
	return w.flushLocked() == nil
}

func itoa(n int) string { return strconv.Itoa(n) }
