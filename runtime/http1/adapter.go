package http1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
		c.tmpl = (&http.Request{RemoteAddr: c.nc.RemoteAddr().String(), TLS: c.tls, ProtoMajor: 1}).WithContext(c.ctx)
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

// requestBody is the handler's request body, over the connection's body
// guard (see bodyGuard).
type requestBody struct {
	bodyGuard
	c      *conn
	r      *http.Request
	closed bool // by the handler
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over {
		return 0, errBodyOver
	}
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.c.readBody(p)
	if err == io.EOF && b.c.bd.trailer.Len() > 0 {
		if b.r.Trailer == nil {
			b.r.Trailer = make(http.Header)
		}
		for name, value := range b.c.bd.trailer.All() {
			k := http.CanonicalHeaderKey(string(name))
			b.r.Trailer[k] = append(b.r.Trailer[k], string(value))
		}
		b.c.bd.trailer.Reset()
	}
	return n, err
}

func (b *requestBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// response is the http.ResponseWriter over the connection's encoder,
// reused for every request of a connection.
type response struct {
	c      *conn
	e      *encoder
	req    *http.Request
	body   *requestBody
	header http.Header

	wroteHeader bool
	trailers    []string // declared, canonical
}

func (w *response) reset(r *http.Request) {
	if w.header == nil {
		w.header = make(http.Header)
	}
	clear(w.header)
	w.req, w.wroteHeader, w.trailers = r, false, w.trailers[:0]
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	w.writeHeader(code)
}

// writeHeader formats the head from the header as it is now (net/http's
// rule: later changes do not reach the client, but for trailers).
func (w *response) writeHeader(code int) {
	e := w.e
	if w.wroteHeader || e.failed {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An interim response goes out at once, with the fields set so
		// far (103 Early Hints); they stay for the final one.
		b := e.statusLine(code)
		for k, vs := range w.header {
			if !validFieldName(k) {
				continue
			}
			for _, v := range vs {
				b = AppendField(b, k, v)
			}
		}
		e.interim(b)
		return
	}
	w.wroteHeader = true
	h := w.header
	cl := int64(-1)
	if v := h.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	closeConn := false
	for _, v := range h["Connection"] {
		forEachToken([]byte(v), func(tok []byte) {
			if asciiEqualFold(tok, "close") {
				closeConn = true
			}
		})
	}
	if tr, ok := h["Trailer"]; ok && e.allowsTrailers(code) {
		for _, v := range tr {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
	b := e.statusLine(code)
	for k, vs := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		case "Connection":
			if code != http.StatusSwitchingProtocols {
				continue
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !validFieldName(k) {
			continue
		}
		for _, v := range vs {
			b = AppendField(b, k, v)
		}
	}
	if len(w.trailers) > 0 {
		b = AppendField(b, "Trailer", strings.Join(w.trailers, ", "))
	}
	_, hasDate := h["Date"]
	e.headDone(b, code, cl, closeConn, len(w.trailers) > 0, hasDate)
}

func (w *response) Write(p []byte) (int, error) {
	e := w.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed {
		return 0, net.ErrClosed
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if !e.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if !e.committed {
		if e.hold(p) {
			return len(p), nil
		}
		e.commit(true)
	}
	if e.cl >= 0 && e.written+int64(len(p)) > e.cl {
		return 0, http.ErrContentLength
	}
	e.written += int64(len(p))
	if err := e.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends what was written, committing the head as streaming.
func (w *response) Flush() {
	e := w.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed {
		return
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if !e.committed {
		e.commit(true)
	}
	e.flushLocked()
}

// FlushError is Flush for http.ResponseController.
func (w *response) FlushError() error {
	w.Flush()
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	if w.e.failed {
		return net.ErrClosed
	}
	return nil
}

// Hijack hands the connection to the handler with whatever the client
// sent beyond the request head (an upgraded protocol's first bytes).
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	if w.e.failed {
		return nil, nil, net.ErrClosed
	}
	if w.e.committed {
		w.e.flushLocked()
	}
	nc, rest := w.c.handOver()
	var rd io.Reader = nc
	if len(rest) > 0 {
		rd = &replayConn{Conn: nc, buf: rest}
	}
	return nc, bufio.NewReadWriter(bufio.NewReader(rd), bufio.NewWriter(nc)), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController (a
// handler ends blocked I/O with them). The connection loop sets its own
// read deadlines before every read; a write deadline is cleared after the
// request.
func (w *response) SetReadDeadline(t time.Time) error { return w.c.nc.SetReadDeadline(t) }

// Neither takes mu: their point is to end a write blocked while holding it.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.e.writeDeadline.Store(true)
	return w.c.nc.SetWriteDeadline(t)
}

// finish completes the response after the handler returned; false means
// the connection cannot continue.
func (w *response) finish() bool {
	e := w.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed {
		return false
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	return e.finish(w.appendTrailers) == nil
}

// appendTrailers writes the declared trailers and those set with
// http.TrailerPrefix.
func (w *response) appendTrailers(b []byte) []byte {
	for _, k := range w.trailers {
		if !validFieldName(k) {
			continue
		}
		for _, v := range w.header[k] {
			b = AppendField(b, k, v)
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && validFieldName(name) {
			for _, v := range vs {
				b = AppendField(b, name, v)
			}
		}
	}
	return b
}
