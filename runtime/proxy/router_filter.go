package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/clock"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/route"
	"github.com/sluice-proxy/sluice/runtime/stream"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// forward sends the request upstream with retries and streams the answer.
//
// What the plain request (no body, no filter, no mirror, no per-try
// timeout, a first try that is answered) does not take is kept out of line
// in the small functions below it: the hot path then runs in fewer cache
// lines (forward ran some 75 of them a request for ~500 instructions).
func (x *activeStream) forward(ctx context.Context, lr *listenerRoutes, noBody bool) {
	// The subset comes only from what a filter set on this stream (the
	// canary plugin's property); a client cannot name one. No filter state,
	// no lookup.
	var subset string
	if len(x.s.info.FilterState) > 0 {
		subset = string(x.s.info.FilterState[route.SubsetProperty])
	}
	backend := x.rt.PickBackend(x.s.reqHeaders, subset, x.pickRnd)
	x.s.info.Cluster = nil
	if backend == nil {
		x.replyNoBackend()
		return
	}
	cl := x.ri.cluster(x.rt, backend, x.snap.Upstream)
	if cl == nil {
		x.replyUnknownCluster()
		return
	}
	x.cluster = backend.Cluster
	x.s.info.ClusterName = backend.Cluster
	x.s.info.ClusterMetadata = cl.Config().Metadata

	h := x.s.reqHeaders
	// An upgrade needs a Connection field: the walk that finds the
	// hop-by-hop fields says whether to look for one.
	// The hop-by-hop and X-Forwarded-* fields: as sanitizeRequestHeaders
	// found them on a route without filters (nothing since has added
	// one), else found again.
	hops := x.reqMask
	if !x.fm.empty() {
		hops = requestMask(h)
	}
	upgrade := ""
	if hops&hopConnection != 0 {
		upgrade = upgradeOf(h)
	}
	scheme, _ := h.GetPseudo(stream.PseudoScheme)
	authority, _ := h.GetPseudo(stream.PseudoAuthority)
	removeFixedHopHeaders(h, hops, upgrade != "")
	// The client's address without its port, for X-Forwarded-For and
	// the hash policy's source IP (empty when the address has no port).
	clientIP := x.ctx.clientIPFor(x.remoteAddr)
	setForwardedFields(h, hops, clientIP, scheme, authority)
	// The upstream hop's scheme is its own, as Envoy's router sets it: an
	// HTTP/2 server over TLS serves a request as https only when
	// :scheme says so (and only then shows its peer the TLS state).
	// Set only when it differs: a plain request to a plain cluster has
	// "http" already, and a Set copies and searches again (~300
	// instructions a request).
	upScheme := "http"
	if cl.Config().TLS != nil {
		upScheme = "https"
	}
	// :scheme as the client sent it still (nothing above touches it).
	if string(scheme) != upScheme {
		h.Set(stream.Scheme, upScheme)
	}

	// The request body: filtered by the chain when there is one, and kept
	// for replay while it fits the buffer so a retry can resend it.
	var body io.Reader
	contentLength := x.contentLength
	if !noBody {
		var ok bool
		if body, contentLength, ok = x.forwardBody(); !ok {
			return
		}
	}
	// Request trailers the client declared go upstream as the filters
	// left them.
	declaredTrailers := body != nil && x.hasTrailers()
	// The mirror's copy: sent now without a body, else once the body has
	// been read in full into the replay buffer; dropped if it never is.
	var mirror *pendingMirror
	if x.ri.mirror != nil {
		mirror = x.newPendingMirror(upgrade != "")
	}
	// What the exchange holds until forward returns, ended by one defer
	// (in this order): the chosen try's context, the mirror's pending
	// copy (a retry slot is exchange's to release). One defer outside any
	// loop is open-coded; a defer per holding (one of them in the loop)
	// went through the runtime's defer records on every request.
	var (
		endTry     func()
		dropMirror *pendingMirror
	)
	defer func() {
		if endTry != nil {
			endTry()
		}
		if dropMirror != nil {
			dropMirror.drop()
		}
	}()
	var replay *replayBody
	if body != nil || mirror != nil {
		replay, dropMirror = x.startReplay(lr, body, contentLength, declaredTrailers, mirror)
	}

	pick := upstream.Pick{Subset: backend.Subset, HashKey: cl.HashKey(h, clientIP)}
	policy := &x.ri.retry
	var resp upstream.Response
	var headAt time.Duration // when the response head came, after the start
	// Looked up now, while the map is in the cache: after the wait for
	// the upstream's answer, with other streams served meanwhile, it is
	// not (this lookup showed in profiles there).
	head := x.isHead()
	if replay == nil && policy.perTryTimeout == 0 {
		// The plain exchange (no body to replay, no try with a context
		// of its own): the first try, straight; exchange takes over from
		// its outcome when it failed or a policy that retries on
		// statuses is to look at it (the default retries on
		// connect-failure and refused-stream only).
		out := &x.firstTry
		*out = upstream.Request{Headers: h, ProtoMajor: x.protoMajor}
		x.startFirstTry(out)
		var err error
		resp, err = cl.Send(ctx, out, pick)
		if err != nil || policy.attempts > 0 && policy.on&statusRetries != 0 {
			var ok bool
			if resp, headAt, endTry, ok = x.exchange(ctx, cl, h, pick, nil, 0, false, resp, err, true); !ok {
				return
			}
		} else {
			headAt = x.answered(resp)
			if resp == (upstream.Response{}) {
				x.replyRetryOverflow()
				return
			}
		}
	} else {
		var ok bool
		if resp, headAt, endTry, ok = x.exchange(ctx, cl, h, pick, replay, contentLength, declaredTrailers, upstream.Response{}, nil, false); !ok {
			return
		}
	}
	if resp.Status() == http.StatusSwitchingProtocols {
		x.upgraded(resp)
		return
	}
	if x.idle != nil {
		x.idle.progressAt(headAt)
	}
	x.respond(resp, head)
}

// startFirstTry notes the upstream timing's start for the first try out.
// One reading for it and the pool's idle ages (Request.Start): between
// them only the cluster's pick, which reads the clock again if it waits
// for a connection slot. On a route without filters the stream's start
// is that moment: since it the stream has only been routed and its head
// rewritten (CPU work; the request body is not read before the try, a
// mirror is handed off without waiting), whereas a filter may wait for a
// Wasm instance or pause the stream (TestUpstreamTimeAfterFilters).
func (x *activeStream) startFirstTry(out *upstream.Request) {
	x.upstreamStart = 0
	if len(x.ri.factories) > 0 {
		x.upstreamStart = clock.Since(x.s.info.Start)
	}
	out.Start = clock.MonoOf(x.s.info.Start) + x.upstreamStart
}

// answered notes a try's response: its endpoint, and when its head came
// (returned, after the stream's start). One clock read for the access
// log and the idle timer's progress (both count from the stream's
// start): the pool's, taken as it read the head, when it took one
// (nothing but the cluster's accounting of the answer since).
func (x *activeStream) answered(resp upstream.Response) (headAt time.Duration) {
	x.upstream = resp.Endpoint()
	if at := resp.HeadAt(); at != 0 {
		headAt = at - clock.MonoOf(x.s.info.Start)
	} else {
		headAt = clock.Since(x.s.info.Start)
	}
	x.upstreamTime = headAt - x.upstreamStart
	x.s.info.Upstream = x.upstream
	return headAt
}

// exchange runs the tries and their retries: from the first, or from the
// outcome (first, firstErr) of a first try forward sent (haveFirst). It
// returns the chosen try's response, when its head came and the try's
// cancel (for when the response is done with); ok is false when the
// stream was answered here instead. A retry slot it holds is released as
// it returns. Kept out of line: the plain request's first try is
// forward's, answered.
//
//go:noinline
func (x *activeStream) exchange(ctx context.Context, cl *upstream.Cluster, h *stream.HeaderMap, pick upstream.Pick, replay *replayBody, contentLength int64, declaredTrailers bool,
	first upstream.Response, firstErr error, haveFirst bool) (resp upstream.Response, headAt time.Duration, endTry func(), ok bool) {
	policy := &x.ri.retry
	heldRetry := false
	defer func() {
		if heldRetry {
			cl.ReleaseRetry()
		}
	}()
	for try := 0; ; try++ {
		tryCancel := noCancel
		var perTryExpired *atomic.Bool
		var err error
		if try == 0 && haveFirst {
			resp, err = first, firstErr
		} else {
			var reqBody io.ReadCloser
			if replay != nil {
				v, ok := replay.view()
				if !ok {
					break
				}
				reqBody = v
			}
			// A try has a context of its own only when it can time out
			// on its own; otherwise the route's context serves and a try
			// is abandoned by closing its response body.
			tryCtx := ctx
			var timer *time.Timer
			if policy.perTryTimeout > 0 {
				tryCtx, tryCancel, timer, perTryExpired = perTryContext(ctx, policy.perTryTimeout)
			}
			out := &x.firstTry
			if try > 0 || reqBody != nil {
				out = new(upstream.Request)
			}
			*out = upstream.Request{Headers: h, ProtoMajor: x.protoMajor}
			if try == 0 {
				x.startFirstTry(out)
			}
			if reqBody != nil {
				out.BodyStream, out.BodyLength = reqBody, contentLength
			}
			if declaredTrailers {
				// Filled as the body ends (the cluster reads it after).
				out.Trailers = &x.reqTrailers
			}
			resp, err = cl.Send(tryCtx, out, pick)
			if timer != nil {
				timer.Stop()
			}
			if heldRetry {
				cl.ReleaseRetry()
				heldRetry = false
			}
		}
		failure := upstream.Failure(-1)
		if err != nil {
			failure = x.tryFailure(err, perTryExpired)
			x.s.info.Upstream = x.upstream
		} else {
			headAt = x.answered(resp)
		}
		// An answered try is looked at again only by a policy that
		// retries on statuses.
		retry := false
		if try < policy.attempts && (err != nil || policy.on&statusRetries != 0) {
			retry = x.shouldRetry(ctx, cl, policy, replay, resp, err, failure)
		}
		if !retry {
			if err != nil {
				tryCancel()
				x.upstreamFailure(ctx, err, failure)
				return resp, headAt, nil, false
			}
			endTry = tryCancel
			break
		}
		heldRetry = true
		if !x.retryWait(ctx, policy, try, resp, err, tryCancel) {
			return resp, headAt, nil, false
		}
		resp = upstream.Response{}
	}
	if resp == (upstream.Response{}) {
		x.replyRetryOverflow()
		return resp, headAt, endTry, false
	}
	return resp, headAt, endTry, true
}

// noCancel is a try's cancel when it has no context of its own.
func noCancel() {}

// statusRetries are the retry conditions that look at an answered try's
// status.
const statusRetries = retry5xx | retryGatewayError | retryRetriableStatusCodes

// The functions below are forward's cold paths, kept out of line: the
// plain request never takes them, and forward's hot path stays in fewer
// cache lines.

//go:noinline
func (x *activeStream) replyNoBackend() {
	x.localReply(&filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("no backend\n"), Details: "no_backend", GRPCStatus: grpcUnavailable})
}

//go:noinline
func (x *activeStream) replyUnknownCluster() {
	x.localReply(&filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("unknown cluster\n"), Details: "cluster_not_found", GRPCStatus: grpcUnavailable})
}

//go:noinline
func (x *activeStream) replyRetryOverflow() {
	x.localReply(&filter.LocalReply{Status: http.StatusBadGateway, Body: []byte("request body too large to retry\n"), Details: "retry_body_overflow", GRPCStatus: grpcUnavailable})
}

// forwardBody is the request body as it goes upstream: filtered by the
// chain when a filter wants it. ok is false when a local reply was sent
// instead.
//
//go:noinline
func (x *activeStream) forwardBody() (body io.Reader, contentLength int64, ok bool) {
	if !x.fm.wantsBody[filter.Request] {
		// No filter wants it: the body goes as on a route without
		// filters.
		x.counter = receivedCounter{r: x.body, x: x}
		return &x.counter, x.contentLength, true
	}
	body, contentLength, lrep := x.filterRequestBody()
	if lrep != nil && x.idle != nil && x.idle.fired.Load() {
		// The client stopped sending its body.
		lrep = x.idle.reply()
	}
	if lrep != nil {
		x.localReply(lrep)
		return nil, 0, false
	}
	return body, contentLength, true
}

// startReplay readies the tries' body (nil without one) and the mirror's
// copy: sent now without a body, else once the body has been read in
// full into the replay buffer. drop is the mirror to drop when forward
// returns (it never is, if the body is not read in full).
//
//go:noinline
func (x *activeStream) startReplay(lr *listenerRoutes, body io.Reader, contentLength int64, declaredTrailers bool, mirror *pendingMirror) (replay *replayBody, drop *pendingMirror) {
	if body == nil {
		if mirror != nil {
			mirror.send(nil)
		}
		return nil, nil
	}
	replay = newReplayBody(body, lr.reqLimit)
	x.replay, x.trailersUpstream = replay, declaredTrailers
	if mirror != nil {
		replay.onEnd, replay.length = mirror.bodyDone, contentLength
		drop = mirror
	}
	return replay, drop
}

// perTryContext is a try's own context when it can time out on its own:
// expired says the timer ended it.
//
//go:noinline
func perTryContext(ctx context.Context, d time.Duration) (tryCtx context.Context, cancel func(), timer *time.Timer, expired *atomic.Bool) {
	tryCtx, cancel = context.WithCancel(ctx)
	expired = new(atomic.Bool)
	timer = time.AfterFunc(d, func() { expired.Store(true); cancel() })
	return tryCtx, cancel, timer, expired
}

// tryFailure is what a try that got no response failed of, noting the
// endpoint it went to.
//
//go:noinline
func (x *activeStream) tryFailure(err error, perTryExpired *atomic.Bool) upstream.Failure {
	var ue *upstream.Error
	if errors.As(err, &ue) {
		x.upstream = ue.Endpoint
	}
	failure := upstream.Classify(err)
	if perTryExpired != nil && perTryExpired.Load() {
		failure = upstream.Timeout
	}
	return failure
}

// shouldRetry says whether a try is tried again (holding one of the
// cluster's retry slots if so); the caller has checked that the policy
// has tries left.
//
//go:noinline
func (x *activeStream) shouldRetry(ctx context.Context, cl *upstream.Cluster, policy *retryPolicy, replay *replayBody, resp upstream.Response, err error, failure upstream.Failure) bool {
	if ctx.Err() != nil || (replay != nil && !replay.replayable()) {
		return false
	}
	if err != nil {
		if !policy.retriableFailure(failure) {
			return false
		}
	} else if !policy.retriableStatus(resp.Status()) {
		return false
	}
	if pastDeadline(ctx) {
		// The route timer is due but has not run yet: the stream is
		// over, whatever this try got.
		return false
	}
	return cl.TryAcquireRetry()
}

// retryWait drops a try that is tried again and waits out the backoff;
// false when the stream's context ended meanwhile (answered here).
//
//go:noinline
func (x *activeStream) retryWait(ctx context.Context, policy *retryPolicy, try int, resp upstream.Response, err error, tryCancel func()) bool {
	x.retries++
	x.ri.stats.retries.Inc()
	if err == nil {
		resp.Close()
	}
	tryCancel()
	select {
	case <-time.After(policy.backoff(try)):
		return true
	case <-ctx.Done():
		x.upstreamFailure(ctx, ctx.Err(), upstream.Timeout)
		return false
	}
}

// upgraded tunnels a response that switched protocols.
//
//go:noinline
func (x *activeStream) upgraded(resp upstream.Response) {
	if x.idle != nil {
		x.idle.stop()
	}
	x.tunnel(resp)
}

// upstreamFailure answers a request that got no response: 504 on timeout,
// 503 on overflow or no healthy endpoint, 502 otherwise.
func (x *activeStream) upstreamFailure(ctx context.Context, err error, f upstream.Failure) {
	if lr := x.s.takeLocal(); lr != nil {
		x.localReply(lr)
		return
	}
	if x.idle != nil && x.idle.fired.Load() {
		// Before the check below: a stalled request body is cut by a read
		// deadline, which net/http reports as the client gone.
		x.localReply(x.idle.reply())
		return
	}
	if x.ss.Context().Err() != nil {
		// The client went away; nobody to answer.
		x.status = 499
		x.details = "downstream_remote_disconnect"
		return
	}
	var rep filter.LocalReply
	switch {
	case ctx.Err() == context.DeadlineExceeded || f == upstream.Timeout || pastDeadline(ctx):
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
	if ce := x.cm.log.Check(zap.DebugLevel, "upstream failure"); ce != nil {
		ce.Write(zap.String("cluster", x.cluster), zap.String("upstream", x.upstream), zap.Error(err))
	}
	x.localReply(&rep)
}

// pastDeadline says the route's deadline has passed, whether or not the
// stream's timer has run yet. A failure seen after it is the route timeout
// (504, gRPC DEADLINE_EXCEEDED), not what the upstream made of it: a gRPC
// upstream is sent the client's grpc-timeout unchanged, as Envoy sends it,
// so it gives up at the same moment as the route timer, just after it (it
// started counting when our request reached it), and resets the stream. On
// a busy machine its reset can be read before the timer's callback has
// run; it must still read as the timeout it is (Envoy answers the timer
// that is due first on its event loop).
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// respond runs the upstream response through the filters and streams it to
// the client.
//
// head says the request went upstream as HEAD: its response has no body
// whatever its head says.
func (x *activeStream) respond(resp upstream.Response, head bool) {
	// The response's maps are the filters' until OnLog: the handle is
	// closed when the stream ends (ServeStream).
	x.upstreamResp = resp
	hdr := resp.Headers()
	// declared: trailers the upstream declared; those it sends
	// undeclared (gRPC over HTTP/2) are known at the body's end.
	// streamingType: the type as the upstream sent it (what a filter
	// leaves is looked at in respondFiltered).
	declared, streamingType := removeResponseHops(hdr, false)
	x.s.respHeaders, x.s.respTrailers = hdr, &x.respTrailers
	bodyLength := resp.BodyLength()
	noBody := bodyLength == 0 || head
	if !x.fm.empty() {
		x.respondFiltered(resp, hdr, declared, bodyLength, noBody)
		return
	}
	// No filter: the head goes as it is, and the body untouched
	// (nextUntouched).
	streaming := bodyLength < 0 || streamingType
	// A declared trailer field stays: HTTP/1.1 then uses chunked encoding.
	x.writeHeader(hdr, noBody && !declared)
	if noBody {
		if declared {
			x.takeTrailers(resp)
		}
		x.end(&x.respTrailers)
		return
	}
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	x.relay(resp, *bufp, streaming)
}

// lastPieceEnds says whether the body's last piece ends the stream in
// the same write, as end's would: no progress to note after it (none is
// after end's either; the stream's timer stops with the stream), which
// saves a clock reading and a codec call on the common response whose
// body came whole. A streaming response (unknown length, or a streaming
// type) keeps its flushed write (one whole write would get a
// Content-Length), and trailers (an HTTP/2 upstream's, after a
// Content-Length body) their own end (TestLastWriteEndsStream).
func (x *activeStream) lastPieceEnds(eos, streaming bool) bool {
	return eos && !streaming && x.respTrailers.Len() == 0
}

// writeLastPiece writes the body's last piece with the end of the stream.
func (x *activeStream) writeLastPiece(chunk []byte) {
	if x.ss.WriteBody(chunk, true) != nil && len(chunk) > 0 {
		x.details = "downstream_remote_disconnect"
		return
	}
	x.sent += int64(len(chunk))
}

// writePiece writes a piece of the body, flushed when the response
// streams; false when the client is gone.
func (x *activeStream) writePiece(chunk []byte, streaming bool) bool {
	if len(chunk) > 0 {
		if werr := x.write(chunk); werr != nil {
			x.details = "downstream_remote_disconnect"
			return false
		}
		if streaming {
			x.flush()
		}
	}
	return true
}

// relay sends the body of a response no filter wants, piece by piece as
// read, and ends the stream.
func (x *activeStream) relay(resp upstream.Response, buf []byte, streaming bool) {
	for {
		chunk, eos, err := x.nextUntouched(resp, buf)
		if x.lastPieceEnds(eos, streaming) {
			x.writeLastPiece(chunk)
			return
		}
		if !x.writePiece(chunk, streaming) {
			return
		}
		if err != nil {
			// The upstream broke off mid-body: the client gets what came
			// (the head and the partial body, flushed so they are not
			// lost in a buffer) and then the cut, as Envoy does: HTTP/1.1
			// closes the connection, HTTP/2 resets the stream.
			x.reset("upstream_reset_after_response_started")
			return
		}
		if eos {
			break
		}
	}
	x.end(&x.respTrailers)
}

// respondFiltered is respond on a stream with filters: the head through
// their response callbacks, the body through them when one wants it.
// Kept out of line: the plain route has none, and respond's hot path
// stays in fewer cache lines.
//
//go:noinline
func (x *activeStream) respondFiltered(resp upstream.Response, hdr *stream.HeaderMap, declared bool, bodyLength int64, noBody bool) {
	if lr := x.fm.headers(filter.Response, noBody && !declared); lr != nil {
		x.localReply(lr)
		return
	}
	streaming := bodyLength < 0 || isStreamingType(hdr)
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	// The pump only when a filter wants the body: otherwise it goes
	// untouched, as on a route without filters (relay).
	var pump *bodyPump
	if x.fm.wantsBody[filter.Response] {
		pump = x.responsePump(resp)
	}

	var pending []byte
	if pump != nil && !noBody {
		// Read ahead as for requests: the length is exact when the whole
		// body passed through before the headers go out. A body of known
		// length that fits the buffer is always read whole: it keeps its
		// Content-Length and leaves in one write, rather than as a chunked
		// stream flushed piece by piece (a syscall and, on HTTP/2, a frame
		// round trip through the connection's writer per flush).
		small := bodyLength > 0 && bodyLength <= int64(len(buf))
		var whole bool
		var lr *filter.LocalReply
		var err error
		pending, whole, lr, err = pump.readAhead(buf, nil, small)
		if err != nil {
			x.localReply(&filter.LocalReply{Status: http.StatusBadGateway, Body: []byte("upstream reset while reading the response\n"), Details: "upstream_reset_after_response_started"})
			return
		}
		if lr != nil {
			x.localReply(lr)
			return
		}
		if whole {
			if x.respTrailers.Len() > 0 {
				// Trailers need chunked encoding on HTTP/1.1: no length.
				hdr.Del("content-length")
				declareTrailers(hdr, &x.respTrailers)
			} else {
				hdr.Set("content-length", strconv.Itoa(len(pending)))
			}
			x.writeHeader(hdr, false)
			x.write(pending)
			x.end(&x.respTrailers)
			return
		}
		hdr.Del("content-length")
		streaming = true
	}
	// A declared trailer field stays: HTTP/1.1 then uses chunked encoding.
	x.writeHeader(hdr, noBody && !declared)
	if noBody {
		if declared {
			x.takeTrailers(resp)
		}
		x.end(&x.respTrailers)
		return
	}
	if pump == nil {
		// No filter wants the body: it goes as on a route without
		// filters.
		x.relay(resp, buf, streaming)
		return
	}
	if len(pending) > 0 {
		x.write(pending)
		if streaming {
			x.flush()
		}
	}
	for {
		chunk, eos, lr, err := pump.next(buf)
		if !x.writePiece(chunk, streaming) {
			return
		}
		if lr != nil {
			// Headers are gone already: all we can do is cut the stream.
			x.reset(lr.Details)
			return
		}
		if err != nil {
			// The upstream broke off mid-body: the client gets what came
			// (the head and the partial body, flushed so they are not lost
			// in a buffer) and then the cut, as Envoy does: HTTP/1.1 closes
			// the connection, HTTP/2 resets the stream.
			x.reset("upstream_reset_after_response_started")
			return
		}
		if eos {
			break
		}
	}
	x.end(&x.respTrailers)
}

// responsePump is the response body's pump through the chain.
func (x *activeStream) responsePump(resp upstream.Response) *bodyPump {
	return &bodyPump{
		fm: x.fm,
		d:  filter.Response,
		read: func(buf []byte) ([]byte, error) {
			n, err := x.readResponse(resp, buf)
			return buf[:n], err
		},
		trailers: func() bool {
			x.takeTrailers(resp)
			return x.respTrailers.Len() > 0
		},
	}
}

// nextUntouched is the pump's next for a body no filter wants: the next
// piece as read, eos at its end with the trailers taken, err a read error
// (chunk then holds what came with it).
func (x *activeStream) nextUntouched(resp upstream.Response, buf []byte) (chunk []byte, eos bool, err error) {
	for {
		n, err := x.readResponse(resp, buf)
		switch {
		case err == io.EOF:
			x.takeTrailers(resp)
			return buf[:n], true, nil
		case err != nil || n > 0:
			return buf[:n], false, err
		}
	}
}

// readResponse reads response body bytes, noting the stream's progress:
// bytes that came with the head were noted with it (forward), at the
// moment they were read; only a read of the upstream since is new.
func (x *activeStream) readResponse(resp upstream.Response, buf []byte) (int, error) {
	n, err := resp.ReadBody(buf)
	if n > 0 && x.idle != nil && !resp.BodyWithHead() {
		x.idle.progress()
	}
	return n, err
}

// takeTrailers makes the upstream's trailers the response's.
func (x *activeStream) takeTrailers(resp upstream.Response) {
	if t := resp.Trailers(); t != nil {
		for name, value := range t.All() {
			x.respTrailers.AddBytes(name, value)
		}
	}
}

// hasTrailers says whether the upstream's response ended with trailers.
func hasTrailers(resp upstream.Response) bool {
	t := resp.Trailers()
	return t != nil && t.Len() > 0
}

// declareTrailers names t's fields in a trailer field of h.
func declareTrailers(h, t *stream.HeaderMap) {
	for name := range t.All() {
		h.Add("trailer", string(name))
	}
}

// isStreamingType says whether a response should be flushed chunk by chunk.
func isStreamingType(h *stream.HeaderMap) bool {
	ct, _ := h.Get("content-type")
	return streamingType(ct)
}

// streamingType says whether a response of content type ct should be
// flushed chunk by chunk.
func streamingType(ct []byte) bool {
	return bytes.HasPrefix(ct, []byte("application/grpc")) || bytes.HasPrefix(ct, []byte("text/event-stream"))
}

// tunnel completes an HTTP/1.1 Upgrade (WebSocket): the 101 goes to the
// client and bytes flow both ways until either side closes.
func (x *activeStream) tunnel(resp upstream.Response) {
	// The head stays readable after Upgrade: the connection it lives in
	// is the tunnel's now, no other request reuses it.
	head := resp.Headers()
	up, err := resp.Upgrade()
	if err != nil {
		resp.Close()
		x.localReply(&filter.LocalReply{Status: http.StatusBadGateway, Body: []byte("upstream upgrade failed\n"), Details: "upgrade_failed"})
		return
	}
	defer up.Close()
	if err := x.ss.WriteHeaders(head, false); err != nil {
		return
	}
	conn, early, err := x.ss.Upgrade()
	if err != nil {
		x.localReply(&filter.LocalReply{Status: http.StatusBadRequest, Body: []byte("upgrade is only proxied over HTTP/1.1\n"), Details: "upgrade_failed"})
		return
	}
	defer conn.Close()
	x.status = resp.Status()
	x.wroteHdr = true
	var up2down, down2up int64
	done := make(chan struct{}, 2)
	go func() {
		down2up, _ = io.Copy(up, io.MultiReader(bytes.NewReader(early), conn))
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

// isHead reports a HEAD request (as the filters left it), whose response
// has no body.
func (x *activeStream) isHead() bool {
	m, _ := x.s.reqHeaders.GetPseudo(stream.PseudoMethod)
	return string(m) == http.MethodHead
}
