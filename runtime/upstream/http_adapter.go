package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// The adapter between the stream model and net/http, until every
// protocol has a codec of its own: httpSender gives the net/http-based
// pool (h3 on quic-go) the Send path, a Request becoming an *http.Request.

// httpSender sends Requests through a net/http round tripper.
type httpSender struct {
	rt     func(*http.Request) (*http.Response, error)
	scheme string
}

func (s *httpSender) send(ctx context.Context, req *Request, addr string, _ time.Duration) (*responseState, error) {
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
	method, _ := req.Headers.GetPseudo(stream.PseudoMethod)
	path, _ := req.Headers.GetPseudo(stream.PseudoPath)
	authority, _ := req.Headers.GetPseudo(stream.PseudoAuthority)
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

func (x *httpExchange) headAt() time.Duration { return 0 }

func (x *httpExchange) bodyWithHead() bool { return false }

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
