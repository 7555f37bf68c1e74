package wasmfilter

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// ClusterCall sends one request to a cluster in the stream model and
// returns the response head (the server binds it to
// upstream.Cluster.Send, which picks the endpoint). ctx bounds the whole
// exchange, the body's reading included; the response must be closed.
type ClusterCall func(ctx context.Context, req *CallRequest) (CallResponse, error)

// CallRequest is a call as the cluster takes it (upstream.Request's
// fields; this binding does not know the upstream package).
type CallRequest struct {
	// Headers are :method, :path and :authority, then the fields.
	Headers *stream.HeaderMap
	// Body is a body held whole; BodyStream one that streams (closed when
	// the cluster is done with it, if it is an io.Closer). nil for none.
	Body       []byte
	BodyStream io.Reader
	// Trailers, when not nil, follow the body.
	Trailers *stream.HeaderMap
	// ProtoMajor 2 asks a protocol = "downstream" cluster for HTTP/2.
	ProtoMajor int
}

// CallResponse is a cluster's answer (upstream.Response): the head, the
// body, then the trailers once the body has ended; valid until Close.
type CallResponse interface {
	Status() int
	Headers() *stream.HeaderMap
	Body() io.Reader
	Trailers() *stream.HeaderMap
	Close() error
}

// WasmHTTPCaller is the hostabi.HTTPCaller the runtime gives the engine:
// http_call and grpc_call go to the proxy's clusters through Lookup.
type WasmHTTPCaller struct {
	// Lookup finds a cluster by name; false makes the call BadArgument,
	// as Envoy answers for an unknown cluster.
	Lookup func(cluster string) (ClusterCall, bool)
	// DefaultTimeout applies when a filter passes 0; default 10s.
	DefaultTimeout time.Duration
	// MaxResponseBytes bounds a reply body; default 16MiB.
	MaxResponseBytes int64
}

// HTTPCall implements hostabi.HTTPCaller.
func (c *WasmHTTPCaller) HTTPCall(ctx context.Context, r hostabi.HTTPCallRequest, done func(hostabi.HTTPCallResponse, error)) error {
	call, ok := c.Lookup(r.Cluster)
	if !ok {
		return fmt.Errorf("cluster %q: %w", r.Cluster, hostabi.ErrUnknownCluster)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = c.DefaultTimeout
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	limit := c.MaxResponseBytes
	if limit <= 0 {
		limit = 16 << 20
	}
	req, err := buildCallRequest(r)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	go func() {
		defer cancel()
		resp, err := call(cctx, req)
		if err != nil {
			done(hostabi.HTTPCallResponse{}, fmt.Errorf("http_call to %q: %w", r.Cluster, err))
			return
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body(), limit+1))
		if err == nil && int64(len(body)) > limit {
			err = fmt.Errorf("reply body over %d bytes", limit)
		}
		if err != nil {
			resp.Close()
			done(hostabi.HTTPCallResponse{}, fmt.Errorf("http_call to %q: %w", r.Cluster, err))
			return
		}
		out := hostabi.HTTPCallResponse{Body: body,
			Headers:  appendHeaderPairs([][2]string{{":status", strconv.Itoa(resp.Status())}}, resp.Headers()),
			Trailers: appendHeaderPairs(nil, resp.Trailers())}
		resp.Close()
		done(out, nil)
	}()
	return nil
}

// envoyInlineRequestHeaders are the request headers Envoy's header map
// keeps in O(1) slots (envoy/http/header_map.h INLINE_REQ_HEADERS and
// INLINE_REQ_RESP_HEADERS). Adding one that is already there appends the
// value with a comma, first value first, instead of adding a second entry:
// that is what a filter's http_call header list with a repeated name turns
// into on Envoy.
var envoyInlineRequestHeaders = map[string]bool{
	":authority": true, ":method": true, ":path": true, ":protocol": true, ":scheme": true,
	"connection": true, "content-length": true, "content-type": true, "expect": true,
	"grpc-timeout": true, "keep-alive": true, "proxy-connection": true, "proxy-status": true,
	"te": true, "transfer-encoding": true, "upgrade": true, "user-agent": true, "via": true,
	"x-client-trace-id": true, "x-envoy-attempt-count": true, "x-envoy-decorator-operation": true,
	"x-envoy-downstream-service-cluster": true, "x-envoy-downstream-service-node": true,
	"x-envoy-expected-rq-timeout-ms": true, "x-envoy-external-address": true,
	"x-envoy-force-trace": true, "x-envoy-hedge-on-per-try-timeout": true, "x-envoy-internal": true,
	"x-envoy-ip-tags": true, "x-envoy-is-timeout-retry": true, "x-envoy-max-retries": true,
	"x-envoy-original-path": true, "x-envoy-original-url": true, "x-envoy-retriable-header-names": true,
	"x-envoy-retriable-status-codes": true, "x-envoy-retry-grpc-on": true, "x-envoy-retry-on": true,
	"x-envoy-upstream-alt-stat-name": true, "x-envoy-upstream-rq-per-try-timeout-ms": true,
	"x-envoy-upstream-rq-timeout-alt-response": true, "x-envoy-upstream-rq-timeout-ms": true,
	"x-envoy-upstream-stream-duration-ms": true, "x-forwarded-client-cert": true,
	"x-forwarded-for": true, "x-forwarded-host": true, "x-forwarded-port": true,
	"x-forwarded-proto": true, "x-request-id": true,
}

// buildCallRequest is the filter's header and trailer pairs as maps, a
// repeated name merged as Envoy's header map merges it.
func buildCallRequest(r hostabi.HTTPCallRequest) (*CallRequest, error) {
	h := new(stream.HeaderMap)
	for _, kv := range r.Headers {
		name := strings.ToLower(kv[0])
		switch {
		case name == stream.Method, name == stream.Path, name == stream.Authority:
		case strings.HasPrefix(name, ":"):
			// :scheme is the cluster's (its protocol and TLS); others
			// have no place in a call.
			continue
		}
		if v, ok := h.Get(name); ok {
			switch {
			case envoyInlineRequestHeaders[name]:
				h.Set(name, string(v)+","+kv[1])
				continue
			case strings.HasPrefix(name, ":"):
				h.Set(name, kv[1]) // the last one counts
				continue
			}
		}
		h.Add(name, kv[1])
	}
	method, _ := h.Get(stream.Method)
	if len(method) == 0 {
		h.Set(stream.Method, http.MethodGet)
	} else if !httpguts.ValidHeaderFieldName(string(method)) {
		return nil, fmt.Errorf("http_call: invalid method %q", method)
	}
	path, _ := h.Get(stream.Path)
	if _, err := url.ParseRequestURI(string(path)); err != nil {
		return nil, fmt.Errorf("http_call :path %q: %w", path, err)
	}
	if !h.Has(stream.Authority) {
		h.Add(stream.Authority, "")
	}
	req := &CallRequest{Headers: h}
	if len(r.Body) > 0 {
		req.Body = r.Body
	}
	if len(r.Trailers) > 0 {
		// Trailers need a chunked (or HTTP/2) body.
		req.Trailers = new(stream.HeaderMap)
		for _, kv := range r.Trailers {
			req.Trailers.Add(kv[0], kv[1])
		}
	}
	return req, nil
}

// appendHeaderPairs lists h's regular fields (lower-case names) in a
// stable order: by name, a name's values in the order they came.
func appendHeaderPairs(out [][2]string, h *stream.HeaderMap) [][2]string {
	if h == nil {
		return out
	}
	first := len(out)
	for name, value := range h.All() {
		if len(name) > 0 && name[0] != ':' {
			out = append(out, [2]string{string(name), string(value)})
		}
	}
	sort.SliceStable(out[first:], func(i, j int) bool { return out[first+i][0] < out[first+j][0] })
	return out
}

var _ hostabi.HTTPCaller = (*WasmHTTPCaller)(nil)
