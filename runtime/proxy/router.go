package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/route"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// Handler serves the HTTP requests of one listener: it routes, runs the
// route's filters, forwards upstream with retries and timeouts, and runs
// the response back through the filters.
type Handler struct {
	listener string
	snap     *atomic.Pointer[Snapshot]
	log      *zap.Logger
	access   *zap.Logger
	// AltSvc, when set, is advertised on every response (HTTP/3).
	AltSvc string
	// Direction is "inbound"/"outbound" for sidecar listeners.
	Direction string
	// Mirrors sends the copies of mirrored routes; nil turns mirroring off.
	Mirrors   *Mirrors
	streamIDs *atomic.Uint64
}

// NewHandler returns the handler for listener name. snap is shared by every
// listener and swapped on reload; access may be nil to disable access logs.
func NewHandler(name string, snap *atomic.Pointer[Snapshot], ids *atomic.Uint64, log, access *zap.Logger) *Handler {
	return &Handler{listener: name, snap: snap, log: log, access: access, streamIDs: ids}
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// exchange is the state of one request as it goes through ServeHTTP.
type exchange struct {
	h        *Handler
	w        http.ResponseWriter
	r        *http.Request
	snap     *Snapshot
	rt       *route.Route
	ri       *routeInfo
	s        *stream
	fm       *filterManager
	status   int
	sent     int64
	received int64
	upstream string
	cluster  string
	details  string
	wroteHdr bool
	// outTrailer is the outbound request's trailer map (nil without any).
	outTrailer http.Header
	// idle is the stream idle timeout; nil when disabled.
	idle *streamIdle
	// pickRnd is the stream's one random draw for the weighted backend
	// choice: the cluster filters see before the pick (ResolveCluster)
	// and the router's pick agree unless a filter changed what the
	// choice depends on.
	pickRnd uint64
	// upstreamStart is when the first try went upstream; upstreamTime
	// how long until the response headers came (0 without a response);
	// retries counts the tries after the first. For the access log.
	upstreamStart time.Time
	upstreamTime  time.Duration
	retries       int
	// bodyRead is what receivedCounter read of an unfiltered body.
	bodyRead atomic.Int64
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	snap := h.snap.Load()
	lr := snap.listeners[h.listener]
	x := &exchange{h: h, w: w, r: r, snap: snap}
	if h.AltSvc != "" {
		w.Header().Set("Alt-Svc", h.AltSvc)
	}

	headersOK := sanitizeRequestHeaders(r.Header, upgradeType(r.Header) != "")
	requestID := r.Header.Get("X-Request-Id")
	if requestID == "" {
		requestID = newRequestID()
		r.Header.Set("X-Request-Id", requestID)
	}
	defer func() { x.finish(start, requestID) }()

	if !headersOK {
		x.localReply(&filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("invalid nominated headers in Connection\n"), Details: "connection_header_sanitization"}, requestID)
		return
	}
	if lr == nil {
		x.localReply(&filter.LocalReply{Status: http.StatusNotFound, Body: []byte("no route\n"), Details: "route_not_found"}, requestID)
		return
	}
	if lrep := normalizeRequestPath(r, lr.path); lrep != nil {
		x.localReply(lrep, requestID)
		return
	}
	x.rt = lr.table.Match(r)
	if x.rt == nil {
		x.localReply(&filter.LocalReply{Status: http.StatusNotFound, Body: []byte("no route\n"), Details: "route_not_found"}, requestID)
		return
	}
	x.ri = snap.routes[x.rt]

	ctx := r.Context()
	var cancel context.CancelFunc
	if d := effectiveTimeout(x.rt.Timeout.D(), r); d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	noBody := r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	if d := streamIdleTimeout(lr, x.rt); d > 0 {
		// The timeout ends the stream through the route context's cancel;
		// idle.fired tells the two apart.
		x.idle = newStreamIdle(d, w, cancel)
		defer x.idle.stop()
		x.w = &x.idle.writer
		if noBody {
			x.idle.reqBodyDone.Store(true)
		} else {
			r.Body = x.idle.requestBody(r.Body, r.ContentLength)
		}
	}

	x.s = newStream(ctx, r)
	x.fillInfo(requestID, start)
	x.pickRnd = rand.Uint64()
	x.s.info.Cluster = x
	if !x.buildChain(lr) {
		return
	}
	defer func() {
		x.s.info.ResponseSize = x.sent
		x.fm.log()
		x.fm.done()
	}()

	if !noBody && !x.fm.empty() {
		feedDone := make(chan struct{})
		defer close(feedDone)
		x.fm.startFeed = func() *bodyFeed { return startBodyFeed(r.Body, feedDone) }
		x.fm.hasTrailers = func() bool { return len(r.Trailer) > 0 }
	}
	if lrep := x.fm.headers(filter.Request, noBody); lrep != nil {
		x.localReply(lrep, requestID)
		return
	}
	x.rt.Rewrite(r)
	x.forward(ctx, lr, noBody, requestID)
}

// effectiveTimeout is the route timeout, shortened by a gRPC client's
// grpc-timeout header.
func effectiveTimeout(route time.Duration, r *http.Request) time.Duration {
	if v := r.Header.Get("Grpc-Timeout"); v != "" {
		if d, ok := parseGRPCTimeout(v); ok && (route <= 0 || d < route) {
			return d
		}
	}
	return route
}

// parseGRPCTimeout reads "100m", "5S" and the other units of the gRPC spec.
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

func (x *exchange) fillInfo(requestID string, start time.Time) {
	r := x.r
	info := &x.s.info
	info.ID = x.h.streamIDs.Add(1)
	info.RequestID = requestID
	info.Start = start
	info.Protocol = protocolName(r)
	info.Scheme = "http"
	if r.TLS != nil {
		info.Scheme = "https"
	}
	info.RouteName = x.rt.Name
	info.RouteMetadata = x.rt.Metadata
	info.Source = r.RemoteAddr
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		info.Destination = la.String()
	}
	info.ConnectionID = filter.ConnectionID(r.Context())
	if r.TLS != nil {
		// Worked out once per connection (the listener's ConnContext).
		info.TLS = mesh.ConnTLSInfo(r.Context(), r.TLS)
	}
	info.RequestSize = r.ContentLength
}

func protocolName(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return "HTTP/2"
	case 3:
		return "HTTP/3"
	}
	if r.ProtoMinor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// buildChain makes the stream's filters. A plugin that cannot make a filter
// (every instance broken) is skipped when it fails open, and answers 503
// when it fails closed, as Envoy does.
func (x *exchange) buildChain(lr *listenerRoutes) bool {
	var filters []filter.HTTPFilter
	for _, name := range x.ri.plugins {
		fac := x.snap.Filters[name]
		f, err := fac.NewFilter(x.s.ctx, x.s)
		if errors.Is(err, filter.ErrClosed) {
			// A reload closed this version between the snapshot load and
			// now: the current snapshot has its successor.
			if cur := x.h.snap.Load().Filters[name]; cur != nil && cur != fac {
				fac = cur
				f, err = fac.NewFilter(x.s.ctx, x.s)
			}
		}
		if err != nil {
			if fac.FailOpen() {
				x.h.log.Warn("plugin unavailable; skipped (failure = open)", zap.String("plugin", name), zap.Error(err))
				continue
			}
			x.h.log.Error("plugin unavailable; request refused (failure = closed)", zap.String("plugin", name), zap.Error(err))
			for _, made := range filters {
				made.OnDone(x.s)
			}
			x.fm = newFilterManager(x.s, nil, 0, 0)
			x.localReply(&filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("plugin " + name + " unavailable\n"), Details: "wasm_fail_closed", GRPCStatus: grpcUnavailable}, x.s.info.RequestID)
			return false
		}
		filters = append(filters, f)
	}
	x.fm = newFilterManager(x.s, filters, lr.reqLimit, responseBufferLimit)
	return true
}

// responseBufferLimit bounds a response body a filter buffers (500 past it).
const responseBufferLimit = 16 << 20

// ResolveCluster answers cluster_name and cluster_metadata before the
// router picks: the backend the pick would choose now, from the request as
// the filters left it, the subset a filter set and the stream's draw.
func (x *exchange) ResolveCluster(info *filter.Info) {
	b := x.rt.PickBackend(x.r.Header, string(info.FilterState[route.SubsetProperty]), x.pickRnd)
	if b == nil {
		info.ClusterName, info.ClusterMetadata = "", nil
		return
	}
	info.ClusterName = b.Cluster
	info.ClusterMetadata = nil
	if cl := x.snap.Upstream.Cluster(b.Cluster); cl != nil {
		info.ClusterMetadata = cl.Config().Metadata
	}
}

// forward sends the request upstream with retries and streams the answer.
func (x *exchange) forward(ctx context.Context, lr *listenerRoutes, noBody bool, requestID string) {
	r := x.r
	// The subset comes only from what a filter set on this stream (the
	// canary plugin's property); a client cannot name one.
	subset := string(x.s.info.FilterState[route.SubsetProperty])
	backend := x.rt.PickBackend(r.Header, subset, x.pickRnd)
	x.s.info.Cluster = nil
	if backend == nil {
		x.localReply(&filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("no backend\n"), Details: "no_backend", GRPCStatus: grpcUnavailable}, requestID)
		return
	}
	cl := x.snap.Upstream.Cluster(backend.Cluster)
	if cl == nil {
		x.localReply(&filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("unknown cluster\n"), Details: "cluster_not_found", GRPCStatus: grpcUnavailable}, requestID)
		return
	}
	x.cluster = backend.Cluster
	x.s.info.ClusterName = backend.Cluster
	x.s.info.ClusterMetadata = cl.Config().Metadata

	upgrade := upgradeType(r.Header)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	removeFixedHopHeaders(r.Header, upgrade != "")
	setForwarded(r.Header, r.RemoteAddr, scheme, r.Host)

	// The request body: filtered by the chain when there is one, and kept
	// for replay while it fits the buffer so a retry can resend it.
	var body io.Reader
	contentLength := r.ContentLength
	if !noBody {
		if x.fm.empty() {
			body = &receivedCounter{r: r.Body, x: x}
		} else {
			var lrep *filter.LocalReply
			body, contentLength, lrep = x.filterRequestBody()
			if lrep != nil && x.idle != nil && x.idle.fired.Load() {
				// The client stopped sending its body.
				lrep = x.idle.reply()
			}
			if lrep != nil {
				x.localReply(lrep, requestID)
				return
			}
		}
	}
	// Request trailers: the outbound request declares the names the client
	// declared, and gets the values when the body ends (HTTP/3 servers hand
	// them over in a new map at that point).
	if len(r.Trailer) > 0 {
		x.outTrailer = make(http.Header, len(r.Trailer))
		for k := range r.Trailer {
			x.outTrailer[k] = nil
		}
		if body != nil {
			body = &trailerCopier{r: body, x: x}
		}
	}
	// The mirror's copy: sent now without a body, else once the body has
	// been read in full into the replay buffer; dropped if it never is.
	mirror := x.newPendingMirror(upgrade != "")
	var replay *replayBody
	if body != nil {
		replay = newReplayBody(body, lr.reqLimit)
		if mirror != nil {
			replay.onEnd, replay.length = mirror.bodyDone, contentLength
			defer mirror.drop()
		}
	} else if mirror != nil {
		mirror.send(nil)
	}

	clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	pick := upstream.Pick{Subset: backend.Subset, HashKey: cl.HashKey(r, clientIP)}
	policy := &x.ri.retry
	var resp *http.Response
	heldRetry := false
	defer func() {
		if heldRetry {
			cl.ReleaseRetry()
		}
	}()
	for try := 0; ; try++ {
		var reqBody io.ReadCloser = http.NoBody
		if replay != nil {
			v, ok := replay.view()
			if !ok {
				break
			}
			reqBody = v
		}
		// A try has a context of its own only when it can time out on its
		// own; otherwise the route's context serves and a try is abandoned
		// by closing its response body.
		tryCtx, tryCancel := ctx, func() {}
		var timer *time.Timer
		var perTryExpired atomic.Bool
		if policy.perTryTimeout > 0 {
			tryCtx, tryCancel = context.WithCancel(ctx)
			timer = time.AfterFunc(policy.perTryTimeout, func() { perTryExpired.Store(true); tryCancel() })
		}
		out := x.outboundRequest(tryCtx, reqBody, contentLength, noBody)
		var err error
		if try == 0 {
			x.upstreamStart = time.Now()
		}
		resp, err = cl.RoundTrip(out, pick)
		if timer != nil {
			timer.Stop()
		}
		if heldRetry {
			cl.ReleaseRetry()
			heldRetry = false
		}
		failure := upstream.Failure(-1)
		if err != nil {
			var ue *upstream.Error
			if errors.As(err, &ue) {
				x.upstream = ue.Endpoint
			}
			failure = upstream.Classify(err)
			if perTryExpired.Load() {
				failure = upstream.Timeout
			}
		}
		if resp != nil {
			x.upstream = upstream.UpstreamAddress(resp)
			x.upstreamTime = time.Since(x.upstreamStart)
		}
		x.s.info.Upstream = x.upstream
		retry := false
		if try < policy.attempts && ctx.Err() == nil && (replay == nil || replay.replayable()) {
			if err != nil {
				retry = policy.retriableFailure(failure)
			} else {
				retry = policy.retriableStatus(resp.StatusCode)
			}
		}
		if retry && !cl.TryAcquireRetry() {
			retry = false
		}
		if !retry {
			if err != nil {
				tryCancel()
				x.upstreamFailure(ctx, err, failure, requestID)
				return
			}
			defer tryCancel()
			break
		}
		heldRetry = true
		x.retries++
		x.ri.stats.retries.Inc()
		if resp != nil {
			resp.Body.Close()
		}
		tryCancel()
		select {
		case <-time.After(policy.backoff(try)):
		case <-ctx.Done():
			x.upstreamFailure(ctx, ctx.Err(), upstream.Timeout, requestID)
			return
		}
	}
	if resp == nil {
		x.localReply(&filter.LocalReply{Status: http.StatusBadGateway, Body: []byte("request body too large to retry\n"), Details: "retry_body_overflow", GRPCStatus: grpcUnavailable}, requestID)
		return
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if x.idle != nil {
			x.idle.stop()
		}
		x.tunnel(resp)
		return
	}
	if x.idle != nil {
		x.idle.progress()
		resp.Body = x.idle.responseBody(resp.Body)
	}
	x.respond(resp, requestID)
}

func (x *exchange) outboundRequest(ctx context.Context, body io.ReadCloser, contentLength int64, noBody bool) *http.Request {
	r := x.r
	out := &http.Request{
		Method:     r.Method,
		URL:        &url.URL{Scheme: "http", Host: x.cluster, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     r.Header,
		Host:       r.Host,
		Body:       body,
		Trailer:    x.outTrailer,
	}
	if r.ProtoMajor >= 2 {
		// The version the request came in with: a protocol = "downstream"
		// cluster (a sidecar's services) sends it on in the same one.
		out.Proto, out.ProtoMajor, out.ProtoMinor = r.Proto, r.ProtoMajor, r.ProtoMinor
	}
	if noBody {
		out.Body = http.NoBody
		out.ContentLength = 0
	} else {
		out.ContentLength = contentLength
	}
	return out.WithContext(ctx)
}

// readChunk returns the next piece of the request body: from the client,
// or from the body feed that a pause in the request headers started.
// err is io.EOF at the end.
func (x *exchange) readChunk(buf []byte) ([]byte, error) {
	if f := x.fm.feed; f != nil {
		if f.finished {
			if f.err != nil {
				return nil, f.err
			}
			return nil, io.EOF
		}
		select {
		case c := <-f.ch:
			switch {
			case c.err != nil:
				f.finished, f.err = true, c.err
				return c.data, c.err
			case c.eos:
				f.finished = true
				return c.data, io.EOF
			}
			return c.data, nil
		case <-x.s.ctx.Done():
			return nil, x.s.ctx.Err()
		}
	}
	n, err := x.r.Body.Read(buf)
	x.received += int64(n)
	return buf[:n], err
}

// filterRequestBody runs the request body through the chain. It reads
// ahead until the whole body is known (a filter buffered it, or it was
// small) or a chunk passed every filter (streaming); in the first case the
// upstream gets an exact Content-Length.
func (x *exchange) filterRequestBody() (io.Reader, int64, *filter.LocalReply) {
	var out []byte
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	if f := x.fm.feed; f != nil {
		// What passed the first filters during the header pause goes
		// through the rest of the chain first.
		if f.err != nil {
			return nil, 0, &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("error reading request body\n"), Details: "downstream_read_error"}
		}
		withTrailers := f.earlyEOS && len(x.r.Trailer) > 0
		pass, lrep := x.fm.dataRange(filter.Request, f.early, f.earlyEOS && !withTrailers, f.upTo, len(x.fm.filters))
		f.early = nil
		if lrep != nil {
			return nil, 0, lrep
		}
		out = append(out, pass...)
		if withTrailers {
			x.s.reqTrailers = x.r.Trailer
			if lrep := x.fm.trailers(filter.Request); lrep != nil {
				return nil, 0, lrep
			}
			if x.fm.holdingAny(filter.Request) {
				pass, lrep = x.fm.data(filter.Request, nil, true)
				if lrep != nil {
					return nil, 0, lrep
				}
				out = append(out, pass...)
			}
		}
		if f.earlyEOS {
			return bytesReader(out), int64(len(out)), nil
		}
	}
	for {
		chunk, err := x.readChunk(buf)
		n := len(chunk)
		eos := err != nil
		if err != nil && err != io.EOF {
			return nil, 0, &filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("error reading request body\n"), Details: "downstream_read_error"}
		}
		if n == 0 && !eos {
			continue
		}
		if eos && len(x.r.Trailer) > 0 {
			x.s.reqTrailers = x.r.Trailer
			// Trailers end the stream: the body callback does not see
			// end_of_stream, the trailers callback follows.
			pass, lrep := x.fm.data(filter.Request, chunk, false)
			if lrep != nil {
				return nil, 0, lrep
			}
			out = append(out, pass...)
			if lrep := x.fm.trailers(filter.Request); lrep != nil {
				return nil, 0, lrep
			}
			if x.fm.holdingAny(filter.Request) {
				pass, lrep = x.fm.data(filter.Request, nil, true)
				if lrep != nil {
					return nil, 0, lrep
				}
				out = append(out, pass...)
			}
			return bytesReader(out), int64(len(out)), nil
		}
		pass, lrep := x.fm.data(filter.Request, chunk, eos)
		if lrep != nil {
			return nil, 0, lrep
		}
		out = append(out, pass...)
		if eos {
			return bytesReader(out), int64(len(out)), nil
		}
		if pass != nil && !x.fm.holdingAny(filter.Request) {
			// Streaming: nobody buffers, so the rest goes chunk by chunk
			// and the length is no longer known up front.
			return io.MultiReader(bytesReader(out), &filteredReader{x: x}), -1, nil
		}
	}
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// filteredReader streams the rest of a request body through the chain.
type filteredReader struct {
	x       *exchange
	pending []byte
	done    bool
}

func (f *filteredReader) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.done {
			return 0, io.EOF
		}
		bufp := chunkPool.Get().(*[]byte)
		chunk, err := f.x.readChunk(*bufp)
		if err != nil && err != io.EOF {
			chunkPool.Put(bufp)
			return 0, err
		}
		eos := err == io.EOF
		pass, lrep := f.x.fm.data(filter.Request, chunk, eos)
		f.pending = append(f.pending[:0], pass...)
		chunkPool.Put(bufp)
		if lrep != nil {
			f.x.s.SendLocalReply(*lrep)
			return 0, errFilterReplied
		}
		f.done = eos
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

var errFilterReplied = errors.New("a filter answered the request locally")

// receivedCounter counts the request body bytes read from the client for
// the access log when no filter reads them (readChunk counts those).
type receivedCounter struct {
	r io.Reader
	x *exchange
}

func (c *receivedCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	// Atomic: the transport reads the body on a goroutine of its own,
	// which may still run when the response is done.
	c.x.bodyRead.Add(int64(n))
	return n, err
}

// trailerCopier passes the request body through and, at its end, copies
// the request trailers into the outbound request's trailer map.
type trailerCopier struct {
	r io.Reader
	x *exchange
}

func (t *trailerCopier) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err == io.EOF {
		for k, v := range t.x.r.Trailer {
			t.x.outTrailer[k] = v
		}
	}
	return n, err
}

// upstreamFailure answers a request that got no response: 504 on timeout,
// 503 on overflow or no healthy endpoint, 502 otherwise.
func (x *exchange) upstreamFailure(ctx context.Context, err error, f upstream.Failure, requestID string) {
	if lr := x.s.takeLocal(); lr != nil {
		x.localReply(lr, requestID)
		return
	}
	if x.idle != nil && x.idle.fired.Load() {
		// Before the check below: a stalled request body is cut by a read
		// deadline, which net/http reports as the client gone.
		x.localReply(x.idle.reply(), requestID)
		return
	}
	if x.r.Context().Err() != nil {
		// The client went away; nobody to answer.
		x.status = 499
		x.details = "downstream_remote_disconnect"
		return
	}
	var rep filter.LocalReply
	switch {
	case ctx.Err() == context.DeadlineExceeded || f == upstream.Timeout:
		rep = filter.LocalReply{Status: http.StatusGatewayTimeout, Body: []byte("upstream request timeout\n"), Details: "upstream_response_timeout", GRPCStatus: grpcDeadlineExceeded}
	case f == upstream.Overflow:
		rep = filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("upstream overflow: circuit breaker open\n"), Details: "upstream_overflow", GRPCStatus: grpcUnavailable}
	case f == upstream.NoHealthyUpstream:
		rep = filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("no healthy upstream\n"), Details: "no_healthy_upstream", GRPCStatus: grpcUnavailable}
	case f == upstream.ConnectFailure:
		rep = filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("upstream connect error\n"), Details: "upstream_connect_failure", GRPCStatus: grpcUnavailable}
	default:
		rep = filter.LocalReply{Status: http.StatusBadGateway, Body: []byte("upstream reset before response\n"), Details: "upstream_reset_before_response_started", GRPCStatus: grpcUnavailable}
	}
	if ce := x.h.log.Check(zap.DebugLevel, "upstream failure"); ce != nil {
		ce.Write(zap.String("cluster", x.cluster), zap.String("upstream", x.upstream), zap.Error(err))
	}
	x.localReply(&rep, requestID)
}

// localReply sends a reply made by sluice or a filter. Response filters see
// it as Envoy's do (headers callbacks run on local replies too), unless the
// reply came from the response path itself.
func (x *exchange) localReply(lr *filter.LocalReply, requestID string) {
	if x.wroteHdr {
		return
	}
	x.status = lr.Status
	x.details = lr.Details
	if x.s != nil {
		x.s.info.ResponseDetails = lr.Details
		if x.s.resp == nil {
			// on_log and metrics read the status of local replies too.
			x.s.resp = &filter.ResponseHead{Status: lr.Status, Header: lr.Header, FromLocal: true}
		}
	}
	x.wroteHdr = true
	x.sent = writeLocalReply(x.w, x.r, lr, requestID)
}

// respond runs the upstream response through the filters and streams it to
// the client.
func (x *exchange) respond(resp *http.Response, requestID string) {
	defer resp.Body.Close()
	removeHopHeaders(resp.Header, false)
	x.s.resp = &filter.ResponseHead{Status: resp.StatusCode, Header: resp.Header}
	noBody := resp.ContentLength == 0 || x.r.Method == http.MethodHead
	if !x.fm.empty() {
		if lr := x.fm.headers(filter.Response, noBody && len(resp.Trailer) == 0); lr != nil {
			x.localReply(lr, requestID)
			return
		}
	}
	status := x.s.resp.Status
	hdr := x.w.Header()
	for k, vs := range x.s.resp.Header {
		hdr[k] = vs
	}
	streaming := resp.ContentLength < 0 || isStreamingType(hdr.Get("Content-Type"))
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp

	var pending []byte
	if !x.fm.empty() && !noBody {
		// Read ahead as for requests: the length is exact when the whole
		// body passed through before the headers go out. A body of known
		// length that fits the buffer is always read whole: it keeps its
		// Content-Length and leaves in one write, rather than as a chunked
		// stream flushed piece by piece (a syscall and, on HTTP/2, a frame
		// round trip through the connection's writer per flush).
		small := resp.ContentLength > 0 && resp.ContentLength <= int64(len(buf))
		whole := false
		for {
			n, err := resp.Body.Read(buf)
			if err != nil && err != io.EOF {
				x.status = http.StatusBadGateway
				x.localReply(&filter.LocalReply{Status: http.StatusBadGateway, Body: []byte("upstream reset while reading the response\n"), Details: "upstream_reset_after_response_started"}, requestID)
				return
			}
			eos := err == io.EOF
			if eos && len(resp.Trailer) > 0 {
				x.s.resp.Trailer = resp.Trailer
				pass, lr := x.fm.data(filter.Response, buf[:n], false)
				if lr == nil {
					pending = append(pending, pass...)
					lr = x.fm.trailers(filter.Response)
				}
				if lr == nil && x.fm.holdingAny(filter.Response) {
					pass, lr = x.fm.data(filter.Response, nil, true)
					pending = append(pending, pass...)
				}
				if lr != nil {
					x.localReply(lr, requestID)
					return
				}
				whole = true
				break
			}
			pass, lr := x.fm.data(filter.Response, buf[:n], eos)
			if lr != nil {
				x.localReply(lr, requestID)
				return
			}
			pending = append(pending, pass...)
			if eos {
				whole = true
				break
			}
			if pass != nil && !small && !x.fm.holdingAny(filter.Response) {
				break
			}
		}
		if whole {
			if len(x.s.resp.Trailer) > 0 {
				// Trailers need chunked encoding on HTTP/1.1: no length.
				hdr.Del("Content-Length")
				for k := range x.s.resp.Trailer {
					hdr.Add("Trailer", k)
				}
			} else {
				hdr.Set("Content-Length", strconv.Itoa(len(pending)))
			}
			x.writeHeader(status)
			n, _ := x.w.Write(pending)
			x.sent += int64(n)
			x.writeTrailers(x.s.resp.Trailer)
			return
		}
		hdr.Del("Content-Length")
		streaming = true
	}
	if trailers := resp.Trailer; len(trailers) > 0 || strings.HasPrefix(hdr.Get("Content-Type"), "application/grpc") {
		// Announce trailers so HTTP/1.1 uses chunked encoding for them.
		for k := range trailers {
			hdr.Add("Trailer", k)
		}
	}
	x.writeHeader(status)
	if noBody {
		x.writeTrailers(resp.Trailer)
		return
	}
	flusher, _ := x.w.(http.Flusher)
	if len(pending) > 0 {
		n, _ := x.w.Write(pending)
		x.sent += int64(n)
		if streaming && flusher != nil {
			flusher.Flush()
		}
	}
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if !x.fm.empty() {
				eos := err == io.EOF && len(resp.Trailer) == 0
				pass, lr := x.fm.data(filter.Response, chunk, eos)
				if lr != nil {
					// Headers are gone already: all we can do is cut the stream.
					x.details = lr.Details
					panic(http.ErrAbortHandler)
				}
				chunk = pass
			}
			if len(chunk) > 0 {
				w, werr := x.w.Write(chunk)
				x.sent += int64(w)
				if werr != nil {
					x.details = "downstream_remote_disconnect"
					return
				}
				if streaming && flusher != nil {
					flusher.Flush()
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			// The upstream broke off mid-body: the client gets what came
			// (the head and the partial body, flushed so they are not lost
			// in a buffer) and then the cut, as Envoy does: HTTP/1.1 closes
			// the connection, HTTP/2 resets the stream.
			x.details = "upstream_reset_after_response_started"
			if flusher != nil {
				flusher.Flush()
			}
			panic(http.ErrAbortHandler)
		}
	}
	trailers := resp.Trailer
	if len(trailers) > 0 && !x.fm.empty() {
		x.s.resp.Trailer = trailers
		if lr := x.fm.trailers(filter.Response); lr != nil {
			x.details = lr.Details
			panic(http.ErrAbortHandler)
		}
		trailers = x.s.resp.Trailer
	}
	x.writeTrailers(trailers)
}

func (x *exchange) writeHeader(status int) {
	x.status = status
	x.wroteHdr = true
	if x.idle != nil {
		x.idle.responseStarted()
	}
	x.w.WriteHeader(status)
}

func (x *exchange) writeTrailers(t http.Header) {
	if len(t) == 0 {
		return
	}
	hdr := x.w.Header()
	for k, vs := range t {
		hdr[http.TrailerPrefix+k] = vs
	}
}

// isStreamingType says whether a response should be flushed chunk by chunk.
func isStreamingType(ct string) bool {
	return strings.HasPrefix(ct, "application/grpc") || strings.HasPrefix(ct, "text/event-stream")
}

// tunnel completes an HTTP/1.1 Upgrade (WebSocket): the 101 goes to the
// client and bytes flow both ways until either side closes.
func (x *exchange) tunnel(resp *http.Response) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		x.localReply(&filter.LocalReply{Status: http.StatusBadGateway, Body: []byte("upstream upgrade failed\n"), Details: "upgrade_failed"}, x.s.info.RequestID)
		return
	}
	defer up.Close()
	conn, brw, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		x.localReply(&filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("upgrade is only proxied over HTTP/1.1\n"), Details: "upgrade_failed"}, x.s.info.RequestID)
		return
	}
	defer conn.Close()
	x.status = resp.StatusCode
	x.wroteHdr = true
	// The 101 head goes out by hand: Response.Write would try to copy the
	// upgraded connection as if it were a body.
	fmt.Fprintf(brw, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	resp.Header.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	var up2down, down2up int64
	done := make(chan struct{}, 2)
	go func() {
		down2up, _ = io.Copy(up, brw)
		done <- struct{}{}
	}()
	go func() {
		up2down, _ = io.Copy(conn, up)
		done <- struct{}{}
	}()
	<-done
	// One side ended: close both so the other copy ends too.
	conn.Close()
	up.Close()
	<-done
	x.received += down2up
	x.sent += up2down
}
