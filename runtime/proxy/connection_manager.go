package proxy

import (
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/clock"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// ConnectionManager serves the HTTP streams of one listener, as Envoy's
// HTTP connection manager: every request a codec delivers becomes an
// activeStream that is sanitized, routed, run through the route's filters
// (filterManager) and forwarded by the router (router_filter.go); the
// access log and metrics are written when it ends (access_log.go).
type ConnectionManager struct {
	listener string
	snap     *atomic.Pointer[Snapshot]
	routes   atomic.Pointer[listenerRoutesOf] // routesOf's last lookup
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

var _ stream.Handler = (*ConnectionManager)(nil)

// NewConnectionManager returns the connection manager for listener name.
// snap is shared by every listener and swapped on reload; access may be
// nil to disable access logs.
func NewConnectionManager(name string, snap *atomic.Pointer[Snapshot], ids *atomic.Uint64, log, access *zap.Logger) *ConnectionManager {
	return &ConnectionManager{listener: name, snap: snap, log: log, access: access, streamIDs: ids}
}

// listenerRoutesOf is a snapshot's routes of the manager's listener, as
// routesOf last looked them up.
type listenerRoutesOf struct {
	snap *Snapshot
	lr   *listenerRoutes
}

// routesOf is snap.listeners[cm.listener], looked up once a snapshot: the
// map's lookup by the listener's name was some 110 instructions a
// request, and a snapshot changes only with the config. The pair is
// replaced whole (one allocation a reload), so a stream never sees one
// snapshot's routes with another's (TestRoutesOfFollowsSnapshot).
func (cm *ConnectionManager) routesOf(snap *Snapshot) *listenerRoutes {
	if c := cm.routes.Load(); c != nil && c.snap == snap {
		return c.lr
	}
	lr := snap.listeners[cm.listener]
	cm.routes.Store(&listenerRoutesOf{snap: snap, lr: lr})
	return lr
}

// ServeStream serves one request: the decoding half up to the router,
// which then owns the stream until its response is written.
func (cm *ConnectionManager) ServeStream(ss stream.ServerStream) {
	x := cm.acquireStream(ss)
	served := false
	defer func() { cm.releaseStream(x, served) }()
	x.serve()
	served = true
}

// serve is ServeStream's work on the active stream x.
func (x *activeStream) serve() {
	cm, ss := x.cm, x.ss
	start := clock.Now()
	snap := cm.snap.Load()
	lr := cm.routesOf(snap)
	x.snap = snap
	h := ss.RequestHeaders()

	// The request as received is cleaned before anything reads it: the
	// client's Connection nominations and x-sluice-* fields go, the
	// request gets its id and its normalized :path.
	headersOK, seen, mask := sanitizeRequestHeaders(h)
	x.reqMask = mask
	if _, ok := h.GetPseudo(stream.PseudoScheme); !ok {
		addScheme(h, ss.Connection().Scheme)
	}
	x.setRequestID(h, seen&seenRequestID != 0)
	defer func() { x.finish(start) }()
	x.decode(start, lr, h, headersOK, seen)
}

// addScheme gives a request without :scheme the connection's, for a
// codec that leaves it out (see RequestHeaders; the HTTP/1.1 codec adds
// the connection's itself, cheaper before the fields than here after
// them), as Envoy sets it. Absent: no Set's search. Our own constants are
// added as they are (AddChecked: no copy of the name lowered, ~100
// instructions); any other scheme as before. Kept out of line: the
// HTTP/1.1 request never needs it.
//
//go:noinline
func addScheme(h *stream.HeaderMap, scheme string) {
	switch scheme {
	case "", "http":
		h.AddChecked(schemeName, schemeHTTP)
	case "https":
		h.AddChecked(schemeName, schemeHTTPS)
	default:
		h.Add(stream.Scheme, scheme)
	}
}

// decode is serve's work from the checks of the request on: it routes
// the stream and runs the decoder filters and the router. What it holds
// until the stream ends (the request body, the stream's timer, the
// filters' log, the body feed) is released by one defer, in the reverse
// order of taking: with a defer per holding and this many returns the
// compiler cannot open-code them, and the runtime's defer records cost on
// every request.
//
// seen is what sanitizeRequestHeaders saw of the request (its
// grpc-timeout and Trailer fields); nothing between it and their
// lookups adds one.
func (x *activeStream) decode(start time.Time, lr *listenerRoutes, h *stream.HeaderMap, headersOK bool, seen requestFields) {
	ss := x.ss
	var (
		bodyOpen, timed, chained bool
		feedDone                 chan struct{}
	)
	defer func() {
		if feedDone != nil {
			close(feedDone)
		}
		if chained {
			x.s.info.ResponseSize = x.sent
			if !x.fm.empty() {
				// An empty chain has no callback to end (no body pump
				// runs through it), nor filters to log or be done with.
				x.fm.end()
				x.fm.log()
				x.fm.done()
			}
			x.upstreamResp.Close()
		}
		if timed {
			x.timerFired = !x.idleState.stop()
		}
		if bodyOpen {
			x.streamBody.close()
		}
	}()
	if !headersOK {
		x.replyBadConnection()
		return
	}
	if lr == nil {
		x.replyNoRoute()
		return
	}
	// The method and the target looked up once for the checks below (the
	// codec's slices; nothing here changes them but the normalization,
	// which returns the target as it leaves).
	method, _ := h.GetPseudo(stream.PseudoMethod)
	lrep, target := normalizeRequestPath(h, method, lr.path)
	if lrep != nil {
		x.localReply(lrep)
		return
	}
	// The body's length says whether there is one (requestBody's
	// http.NoBody): one call, and no comparison of interfaces (a runtime
	// call each) for noBody and bodyOpen.
	x.contentLength = ss.RequestBodyLength()
	noBody := x.contentLength == 0
	x.body = x.requestBody(x.contentLength)
	bodyOpen = !noBody
	// Only a request that came with a Trailer field can declare trailers
	// (nothing since sanitizeRequestHeaders adds one).
	x.declaredTrailers = seen&seenTrailer != 0 && declaresTrailers(h)
	conn := ss.Connection()
	x.protoMajor = protoMajor(conn.Protocol)
	x.remoteAddr = remoteAddress(conn)
	if !validTarget(method, target) {
		x.replyBadTarget()
		return
	}
	x.rt = lr.table.Match(h)
	if x.rt == nil {
		x.replyNoRoute()
		return
	}
	x.ri = routeInfoOf(x.rt)

	// One timer per stream serves the route timeout and the stream idle
	// timeout (streamIdle.check): either ends the stream's context; its
	// Err (context.DeadlineExceeded for the route timeout) and
	// idle.fired tell them apart.
	ctx := x.ctx
	routeTimeout := x.rt.Timeout.D()
	if seen&seenGRPCTimeout != 0 {
		routeTimeout = effectiveTimeout(routeTimeout, h)
	}
	if routeTimeout > 0 {
		ctx.deadline = start.Add(routeTimeout)
	}
	idleTimeout := streamIdleTimeout(lr, x.rt)
	if routeTimeout > 0 || idleTimeout > 0 {
		x.idleState.begin(&x.timer, idleTimeout, routeTimeout, start, ss, ctx)
		timed = true
	}
	if idleTimeout > 0 {
		x.idle = &x.idleState
		if noBody {
			x.idle.reqBodyDone.Store(true)
		} else {
			x.body = x.idle.requestBody(x.body, x.contentLength)
		}
	}

	x.filters.init(ctx, h)
	x.s = &x.filters
	x.fillInfo(start)
	if x.rt.Draws() {
		// Only a choice among weighted backends reads the draw (0, as
		// recycle left it, picks the same otherwise): no random number
		// for a route with one backend.
		x.pickRnd = rand.Uint64()
	}
	x.s.info.Cluster = x
	if !x.buildChain(lr) {
		return
	}
	chained = true

	if !noBody && x.fm.wantsBody[filter.Request] {
		feedDone = x.readyFeed()
	}
	if !x.fm.empty() && !x.decodeFilters(h, noBody) {
		return
	}
	x.rt.Rewrite(h)
	x.forward(ctx, lr, noBody)
}

// readyFeed lets a pause in the request headers keep the body flowing to
// the paused filter (bodyFeed); closing the channel it returns ends the
// feed. Kept out of line: only a filter that wants the request body
// needs it. The closure gets its own variable: capturing decode's
// feedDone would move it to the heap on every request.
//
//go:noinline
func (x *activeStream) readyFeed() chan struct{} {
	done := make(chan struct{})
	x.fm.startFeed = func() *bodyFeed { return startBodyFeed(x.body, done) }
	x.fm.hasTrailers = x.hasTrailers
	return done
}

// decode's replies, kept out of line: the plain request never makes them,
// and decode's hot path stays in fewer cache lines.

//go:noinline
func (x *activeStream) replyBadConnection() {
	x.localReply(&filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("invalid nominated headers in Connection\n"), Details: "connection_header_sanitization"})
}

//go:noinline
func (x *activeStream) replyNoRoute() {
	x.localReply(&filter.LocalReply{Status: http.StatusNotFound, Body: []byte("no route\n"), Details: "route_not_found"})
}

//go:noinline
func (x *activeStream) replyBadTarget() {
	x.localReply(&filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("Bad Request\n"), Details: "invalid_request_target"})
}

// decodeFilters runs the request headers through the chain; false when
// the stream was answered. Kept out of line: the plain route has no
// filters, and decode's hot path stays in fewer cache lines.
//
//go:noinline
func (x *activeStream) decodeFilters(h *stream.HeaderMap, noBody bool) bool {
	if lrep := x.fm.headers(filter.Request, noBody); lrep != nil {
		x.localReply(lrep)
		return false
	}
	if !validRequestTarget(h) {
		// A filter set a :path that is no request-target.
		x.replyBadTarget()
		return false
	}
	return true
}

// effectiveTimeout is the route timeout, shortened by a gRPC client's
// grpc-timeout header.
func effectiveTimeout(route time.Duration, h *stream.HeaderMap) time.Duration {
	if v, _ := h.Get("grpc-timeout"); len(v) > 0 {
		if d, ok := parseGRPCTimeout(string(v)); ok && (route <= 0 || d < route) {
			return d
		}
	}
	return route
}
