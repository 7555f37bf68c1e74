package wasmfilter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/hostabi"
)

// RoundTripFunc sends one request to a cluster (e.g. a closure over
// upstream.Cluster.RoundTrip, which picks the endpoint and sets URL.Host).
type RoundTripFunc func(*http.Request) (*http.Response, error)

// WasmHTTPCaller is the hostabi.HTTPCaller the runtime gives the engine:
// http_call and grpc_call go to the proxy's clusters through Lookup.
type WasmHTTPCaller struct {
	// Lookup finds a cluster by name; false makes the call BadArgument,
	// as Envoy answers for an unknown cluster.
	Lookup func(cluster string) (RoundTripFunc, bool)
	// DefaultTimeout applies when a filter passes 0; default 10s.
	DefaultTimeout time.Duration
	// MaxResponseBytes bounds a reply body; default 16MiB.
	MaxResponseBytes int64
}

// HTTPCall implements hostabi.HTTPCaller.
func (c *WasmHTTPCaller) HTTPCall(ctx context.Context, r hostabi.HTTPCallRequest, done func(hostabi.HTTPCallResponse, error)) error {
	rt, ok := c.Lookup(r.Cluster)
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
	cctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := buildCallRequest(cctx, r)
	if err != nil {
		cancel()
		return err
	}
	go func() {
		defer cancel()
		resp, err := rt(req)
		if err != nil {
			done(hostabi.HTTPCallResponse{}, fmt.Errorf("http_call to %q: %w", r.Cluster, err))
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err == nil && int64(len(body)) > limit {
			err = fmt.Errorf("reply body over %d bytes", limit)
		}
		if err != nil {
			done(hostabi.HTTPCallResponse{}, fmt.Errorf("http_call to %q: %w", r.Cluster, err))
			return
		}
		out := hostabi.HTTPCallResponse{Body: body,
			Headers:  appendHeaderPairs([][2]string{{":status", strconv.Itoa(resp.StatusCode)}}, resp.Header),
			Trailers: appendHeaderPairs(nil, resp.Trailer)}
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

func buildCallRequest(ctx context.Context, r hostabi.HTTPCallRequest) (*http.Request, error) {
	scheme := "http"
	pseudo := map[string]string{}
	hdr := http.Header{}
	for _, kv := range r.Headers {
		name := strings.ToLower(kv[0])
		if strings.HasPrefix(name, ":") {
			if v, ok := pseudo[name]; ok && envoyInlineRequestHeaders[name] {
				pseudo[name] = v + "," + kv[1]
			} else {
				pseudo[name] = kv[1]
			}
			continue
		}
		if vs := hdr.Values(name); len(vs) > 0 && envoyInlineRequestHeaders[name] {
			vs[0] += "," + kv[1]
			continue
		}
		hdr.Add(name, kv[1])
	}
	method, path, authority := pseudo[":method"], pseudo[":path"], pseudo[":authority"]
	if v, ok := pseudo[":scheme"]; ok {
		scheme = v
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, fmt.Errorf("http_call :path %q: %w", path, err)
	}
	u.Scheme, u.Host = scheme, authority
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return nil, fmt.Errorf("http_call: %w", err)
	}
	req.Header = hdr
	req.Host = authority
	if len(r.Trailers) > 0 {
		req.Trailer = http.Header{}
		for _, kv := range r.Trailers {
			req.Trailer.Add(kv[0], kv[1])
		}
		// Trailers need a chunked (or HTTP/2) body.
		req.ContentLength = -1
	}
	if len(r.Body) == 0 && len(r.Trailers) == 0 {
		req.Body = http.NoBody
	}
	return req, nil
}

// appendHeaderPairs lists h with lowercase keys in a stable order.
func appendHeaderPairs(out [][2]string, h http.Header) [][2]string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			out = append(out, [2]string{strings.ToLower(k), v})
		}
	}
	return out
}

var _ hostabi.HTTPCaller = (*WasmHTTPCaller)(nil)
