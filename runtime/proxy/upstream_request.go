package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/stream"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// upstreamRequest is one try as the router filter sends it, in the stream
// model: Envoy's UpstreamRequest, shaped as the cluster's stream API
// (upstream.Cluster.Send) takes it, so moving to that API changes only
// clusterSender.
type upstreamRequest struct {
	// headers are :method, :path, :authority and the fields to send
	// (hop-by-hop fields removed, X-Forwarded-* set).
	headers *stream.HeaderMap
	// body is nil without one; length is its length, -1 unknown.
	body   io.ReadCloser
	length int64
	// trailers gives the trailers once body has returned io.EOF (nil for
	// none); trailerNames declares them up front (the client's
	// declaration).
	trailers     func() *stream.HeaderMap
	trailerNames []string
	// protoMajor, protoMinor are the downstream's version: a protocol =
	// "downstream" cluster (a sidecar's services) sends it on in the same.
	protoMajor, protoMinor int
}

// upstreamResponse is one try's answer, valid until Close.
type upstreamResponse interface {
	Status() int
	// Headers are :status and the fields, a "trailer" field naming the
	// trailers the upstream declared.
	Headers() *stream.HeaderMap
	// BodyLength is the body's length: 0 for none, -1 unknown.
	BodyLength() int64
	ReadBody(p []byte) (int, error)
	// Trailers are the response's trailers once ReadBody returned io.EOF.
	Trailers() *stream.HeaderMap
	// Upgrade is the upstream connection after a 101.
	Upgrade() (io.ReadWriteCloser, error)
	// Address is the endpoint that answered ("ip:port").
	Address() string
	Close() error
}

// upstreamSender sends one try to a cluster.
type upstreamSender interface {
	send(ctx context.Context, req *upstreamRequest, pick upstream.Pick) (upstreamResponse, error)
}

// clusterSender serves upstreamSender through the cluster's
// *http.Request API (RoundTrip), converting at this edge only.
type clusterSender struct{ cl *upstream.Cluster }

func (c clusterSender) send(ctx context.Context, req *upstreamRequest, pick upstream.Pick) (upstreamResponse, error) {
	h := req.headers
	method, _ := h.Get(stream.Method)
	target, _ := h.Get(stream.Path)
	authority, _ := h.Get(stream.Authority)
	out := &http.Request{
		Method:     string(method),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     headerOf(h),
		Host:       string(authority),
		Body:       http.NoBody,
	}
	u, err := url.ParseRequestURI(string(target))
	if err != nil {
		if out.Method != http.MethodConnect {
			return nil, &upstream.Error{Failure: upstream.Other, Cluster: c.cl.Name(), Err: err}
		}
		u = &url.URL{Path: "/"}
	}
	u.Scheme, u.Host = "http", c.cl.Name()
	out.URL = u
	if req.protoMajor >= 2 {
		out.ProtoMajor, out.ProtoMinor = req.protoMajor, req.protoMinor
		out.Proto = "HTTP/2.0"
		if req.protoMajor == 3 {
			out.Proto = "HTTP/3.0"
		}
	}
	if req.body != nil {
		out.Body, out.ContentLength = req.body, req.length
		if len(req.trailerNames) > 0 {
			out.Trailer = make(http.Header, len(req.trailerNames))
			for _, k := range req.trailerNames {
				out.Trailer[k] = nil
			}
			out.Body = &trailerCopier{ReadCloser: req.body, from: req.trailers, to: out.Trailer}
		}
	}
	resp, err := c.cl.RoundTrip(out.WithContext(ctx), pick)
	if err != nil {
		return nil, err
	}
	return &httpResponse{r: resp}, nil
}

// trailerCopier passes a request body through and, at its end, copies the
// trailers into the outbound request's trailer map, which net/http's
// writers read after the body.
type trailerCopier struct {
	io.ReadCloser
	from func() *stream.HeaderMap
	to   http.Header
	done bool
}

func (t *trailerCopier) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF && !t.done {
		t.done = true
		if tr := t.from(); tr != nil {
			for name, value := range tr.All() {
				k := http.CanonicalHeaderKey(string(name))
				t.to[k] = append(t.to[k], string(value))
			}
		}
	}
	return n, err
}

// httpResponse is an *http.Response as an upstreamResponse.
type httpResponse struct {
	r        *http.Response
	headers  stream.HeaderMap
	trailers stream.HeaderMap
	built    bool
}

func (r *httpResponse) Status() int { return r.r.StatusCode }

func (r *httpResponse) Headers() *stream.HeaderMap {
	if !r.built {
		r.built = true
		r.headers.Add(stream.Status, statusText(r.r.StatusCode))
		addHeader(&r.headers, r.r.Header)
		if len(r.r.Trailer) > 0 && !r.headers.Has("trailer") {
			names := make([]string, 0, len(r.r.Trailer))
			for k := range r.r.Trailer {
				names = append(names, k)
			}
			slices.Sort(names)
			r.headers.Add("trailer", strings.Join(names, ", "))
		}
	}
	return &r.headers
}

func (r *httpResponse) BodyLength() int64 {
	if r.r.Body == nil || r.r.Body == http.NoBody {
		return 0
	}
	return r.r.ContentLength
}

func (r *httpResponse) ReadBody(p []byte) (int, error) {
	if r.r.Body == nil {
		return 0, io.EOF
	}
	n, err := r.r.Body.Read(p)
	if err == io.EOF && r.trailers.Len() == 0 {
		for k, vs := range r.r.Trailer {
			for _, v := range vs {
				r.trailers.Add(k, v)
			}
		}
	}
	return n, err
}

func (r *httpResponse) Trailers() *stream.HeaderMap { return &r.trailers }

var errNotUpgraded = errors.New("upstream upgrade failed")

func (r *httpResponse) Upgrade() (io.ReadWriteCloser, error) {
	if rwc, ok := r.r.Body.(io.ReadWriteCloser); ok {
		return rwc, nil
	}
	return nil, errNotUpgraded
}

func (r *httpResponse) Address() string { return upstream.UpstreamAddress(r.r) }

func (r *httpResponse) Close() error {
	if r.r.Body == nil {
		return nil
	}
	return r.r.Body.Close()
}
