package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Two adapters between the stream model and net/http, until every
// protocol has a codec of its own and the proxy speaks only the model:
//
//   - httpSender gives the net/http-based pool (h3 on quic-go) the Send
//     path: a Request becomes an *http.Request.
//   - h1Pool.RoundTrip (and h2Pool's, in conn_pool_h2.go) give the old
//     RoundTrip(*http.Request) path the codecs: an *http.Request becomes a
//     Request, so there is one client per protocol.

// httpSender sends Requests through a net/http round tripper.
type httpSender struct {
	rt     func(*http.Request) (*http.Response, error)
	scheme string
}

func (s *httpSender) send(ctx context.Context, req *Request, addr string) (*responseState, error) {
	hr, err := requestToHTTP(ctx, req, s.scheme, addr)
	if err != nil {
		req.closeStream()
		return nil, err
	}
	resp, err := s.rt(hr)
	if err != nil {
		return nil, err
	}
	x := &httpExchange{resp: resp}
	x.st.src = x
	h := new(stream.HeaderMap)
	h.Add(stream.Status, strconv.Itoa(resp.StatusCode))
	for k, vv := range resp.Header {
		for _, v := range vv {
			h.Add(k, v)
		}
	}
	x.st.headers, x.st.status, x.st.bodyLen = h, resp.StatusCode, resp.ContentLength
	if resp.Body == http.NoBody || req.Headers != nil && string(req.method()) == http.MethodHead {
		x.st.bodyLen = 0
	}
	return &x.st, nil
}

// requestToHTTP is req as net/http's clients take it.
func requestToHTTP(ctx context.Context, req *Request, scheme, addr string) (*http.Request, error) {
	method, _ := req.Headers.Get(stream.Method)
	path, _ := req.Headers.Get(stream.Path)
	authority, _ := req.Headers.Get(stream.Authority)
	u, err := url.ParseRequestURI(string(path))
	if err != nil {
		return nil, errors.New("upstream: invalid :path")
	}
	u.Scheme, u.Host = scheme, addr
	hr := &http.Request{
		Method:     string(method),
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, req.Headers.Len()),
		Host:       string(authority),
	}
	for name, value := range req.Headers.All() {
		if len(name) > 0 && name[0] == ':' {
			continue
		}
		switch string(name) {
		case "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection":
			continue
		}
		k := http.CanonicalHeaderKey(string(name))
		hr.Header[k] = append(hr.Header[k], string(value))
	}
	switch {
	case req.Body != nil:
		hr.Body, hr.ContentLength = io.NopCloser(bytes.NewReader(req.Body)), int64(len(req.Body))
		if len(req.Body) == 0 {
			hr.Body = http.NoBody
		}
	case req.BodyStream != nil:
		rc, ok := req.BodyStream.(io.ReadCloser)
		if !ok {
			rc = io.NopCloser(req.BodyStream)
		}
		hr.Body, hr.ContentLength = rc, max(req.BodyLength, 0)
	default:
		hr.Body = http.NoBody
	}
	if req.Trailers != nil && hr.Body != http.NoBody {
		// Declared now (x/net decides on END_STREAM by it), valued when
		// the body ends.
		hr.Trailer = http.Header{}
		hr.Body = &trailerCopier{ReadCloser: hr.Body, from: req.Trailers, to: hr.Trailer}
	}
	return hr.WithContext(ctx), nil
}

// trailerCopier copies a Request's trailers into the *http.Request's once
// its body ends.
type trailerCopier struct {
	io.ReadCloser
	from *stream.HeaderMap
	to   http.Header
}

func (t *trailerCopier) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		for name, value := range t.from.All() {
			if len(name) > 0 && name[0] != ':' {
				k := http.CanonicalHeaderKey(string(name))
				t.to[k] = append(t.to[k], string(value))
			}
		}
	}
	return n, err
}

// httpExchange is a Response over an *http.Response.
type httpExchange struct {
	st       responseState
	resp     *http.Response
	eof      bool
	trailer  *stream.HeaderMap
	finished atomic.Bool
}

func (x *httpExchange) readBody(p []byte) (int, error) {
	n, err := x.resp.Body.Read(p)
	if err == io.EOF {
		x.eof = true
	}
	return n, err
}

func (x *httpExchange) trailers() *stream.HeaderMap {
	if !x.eof || len(x.resp.Trailer) == 0 {
		return nil
	}
	if x.trailer == nil {
		x.trailer = new(stream.HeaderMap)
		for k, vv := range x.resp.Trailer {
			for _, v := range vv {
				x.trailer.Add(k, v)
			}
		}
	}
	return x.trailer
}

func (x *httpExchange) finish(bool) {
	if x.finished.CompareAndSwap(false, true) {
		x.resp.Body.Close()
	}
}

func (x *httpExchange) upgrade() (io.ReadWriteCloser, error) {
	x.finished.Store(true)
	if rwc, ok := x.resp.Body.(io.ReadWriteCloser); ok {
		return rwc, nil
	}
	x.resp.Body.Close()
	return nil, errors.New("upstream: this protocol cannot upgrade a connection")
}

// RoundTrip is the pool's net/http face, kept until the proxy sends
// Requests: req becomes a Request on the same HTTP/1.1 client, and the
// Response an *http.Response whose body gives the connection back at its
// end (or on Close). Like an http.RoundTripper it closes req.Body.
func (p *h1Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	st, err := sendHTTP(p, req)
	if err != nil {
		return nil, err
	}
	return responseToHTTP(st, req)
}

// sendHTTP sends req through a codec's pool as a Request, taken from
// requestPool and given back once nothing reads it any more (a streamed
// body's writer reads its trailers after the body, so that one is not).
func sendHTTP(p streamPool, req *http.Request) (*responseState, error) {
	r := requestFromHTTP(req)
	st, err := p.send(req.Context(), r, req.URL.Host)
	if r.BodyStream == nil {
		r.Headers.Reset()
		*r = Request{Headers: r.Headers}
		requestPool.Put(r)
	}
	return st, err
}

// requestPool keeps RoundTrip's Requests and their header maps.
var requestPool = sync.Pool{New: func() any { return &Request{Headers: new(stream.HeaderMap)} }}

// closeBody closes a request body the pool will not send, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func requestFromHTTP(req *http.Request) *Request {
	r := requestPool.Get().(*Request)
	h := r.Headers
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	h.Add(stream.Method, method)
	h.Add(stream.Path, req.URL.RequestURI())
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	h.Add(stream.Authority, host)
	for k, vv := range req.Header {
		for _, v := range vv {
			h.Add(k, v)
		}
	}
	r.ProtoMajor, r.closeAfter = req.ProtoMajor, req.Close
	if req.Body != nil && req.Body != http.NoBody {
		r.BodyStream, r.BodyLength = req.Body, req.ContentLength
		if len(req.Trailer) > 0 {
			keys := make([]string, 0, len(req.Trailer))
			for k := range req.Trailer {
				keys = append(keys, k)
			}
			h.Set("trailer", strings.Join(keys, ","))
			r.Trailers = new(stream.HeaderMap)
			r.BodyStream = &httpTrailerReader{ReadCloser: req.Body, from: req.Trailer, to: r.Trailers}
		}
	}
	return r
}

// httpTrailerReader fills a Request's trailers from an *http.Request's
// when its body ends (a server hands them over then).
type httpTrailerReader struct {
	io.ReadCloser
	from http.Header
	to   *stream.HeaderMap
}

func (t *httpTrailerReader) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		for k, vv := range t.from {
			for _, v := range vv {
				t.to.Add(k, v)
			}
		}
	}
	return n, err
}

// responseToHTTP is an HTTP/1.1 exchange's response as an *http.Response:
// names and values are one string, the values one slice, and the
// response and its body one allocation.
func responseToHTTP(st *responseState, req *http.Request) (*http.Response, error) {
	c := st.src.(*h1Conn)
	hr := c.resp
	x := &httpResponse{}
	out := &x.resp
	*out = http.Response{
		Status:        statusText(st.status),
		StatusCode:    st.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    hr.Minor,
		ContentLength: hr.ContentLength,
		Close:         !hr.KeepAlive,
		Request:       req,
	}
	if hr.Minor == 0 {
		out.Proto = "HTTP/1.0"
	}
	out.Header = headerFromMap(st.headers)
	if hr.Chunked {
		out.TransferEncoding = chunkedTE
		if tr := out.Header["Trailer"]; len(tr) > 0 {
			out.Trailer = http.Header{}
			for _, v := range tr {
				for _, k := range strings.Split(v, ",") {
					if k = strings.TrimSpace(k); k != "" {
						out.Trailer[http.CanonicalHeaderKey(k)] = nil
					}
				}
			}
			delete(out.Header, "Trailer")
		}
	}
	resp := st.handle()
	if st.status == http.StatusSwitchingProtocols {
		rwc, err := resp.Upgrade()
		if err != nil {
			return nil, err
		}
		out.Body = rwc.(io.ReadCloser)
		return out, nil
	}
	if st.bodyLen == 0 {
		// No body at all: settle the connection now.
		resp.Close()
		out.Body = http.NoBody
		return out, nil
	}
	x.body = h1HTTPBody{resp: resp, out: out}
	out.Body = &x.body
	return out, nil
}

var chunkedTE = []string{"chunked"}

// httpResponse is an *http.Response with its body, allocated together.
type httpResponse struct {
	resp http.Response
	body h1HTTPBody
}

// headerFromMap is h's regular fields as an http.Header with canonical
// names: one string holds every name and value, one slice every value.
func headerFromMap(h *stream.HeaderMap) http.Header {
	total, n := 0, 0
	for name, value := range h.All() {
		if name[0] != ':' {
			total += len(name) + len(value)
			n++
		}
	}
	var sb strings.Builder
	sb.Grow(total)
	for name, value := range h.All() {
		if name[0] == ':' {
			continue
		}
		upper := true
		for _, ch := range name {
			if upper && 'a' <= ch && ch <= 'z' {
				ch -= 'a' - 'A'
			}
			upper = ch == '-'
			sb.WriteByte(ch)
		}
		sb.Write(value)
	}
	s := sb.String()
	out := make(http.Header, n)
	vals := make([]string, n)
	i, off := 0, 0
	for name, value := range h.All() {
		if name[0] == ':' {
			continue
		}
		key := s[off : off+len(name)]
		off += len(name)
		vals[i] = s[off : off+len(value)]
		off += len(value)
		if old, ok := out[key]; ok {
			out[key] = append(old, vals[i])
		} else {
			out[key] = vals[i : i+1 : i+1]
		}
		i++
	}
	return out
}

// statusTexts are "200 OK" and the like, made once.
var statusTexts = func() (t [600]string) {
	for code := 100; code < 600; code++ {
		t[code] = strconv.Itoa(code) + " " + http.StatusText(code)
	}
	return t
}()

func statusText(code int) string {
	if code >= 100 && code < 600 {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}

// h1HTTPBody is an *http.Response body over a Response: at its end the
// trailers are copied and the connection settled.
type h1HTTPBody struct {
	resp   Response
	out    *http.Response
	err    error // sticky, once the body ended
	closed atomic.Bool
}

var errBodyClosed = errors.New("upstream: read on closed response body")

func (b *h1HTTPBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.resp.ReadBody(p)
	switch {
	case err == io.EOF:
		if t := b.resp.Trailers(); t != nil {
			if b.out.Trailer == nil {
				b.out.Trailer = http.Header{}
			}
			for name, value := range t.All() {
				k := http.CanonicalHeaderKey(string(name))
				b.out.Trailer[k] = append(b.out.Trailer[k], string(value))
			}
		}
		b.err = io.EOF
		b.resp.Close()
	case err != nil:
		b.err = err
		b.resp.Close()
	}
	return n, err
}

// Close ends the body; before its end the connection is closed, which also
// unblocks a Read in progress.
func (b *h1HTTPBody) Close() error {
	b.closed.Store(true)
	return b.resp.Close()
}
