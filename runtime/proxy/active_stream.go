package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/route"
	"github.com/sluice-proxy/sluice/runtime/stream"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// activeStream is one request from the codec's ServeStream call to the
// end of its response: Envoy's ActiveStream.
type activeStream struct {
	// ctx is the stream's context (what filters and the upstream request
	// see). It is outside streamState, which recycle clears: release
	// readies it for reuse, with the active stream or, on HTTP/1.x, kept
	// on the connection, where its registration on the connection's
	// context may fire at any time.
	ctx *streamContext
	// timer serves the stream's route and idle timeouts (streamIdle). It
	// is outside streamState too: it outlives each stream and may be
	// firing while the active stream is recycled.
	timer streamTimer
	// respHeaders and respTrailers are the response as it goes out: the
	// upstream's, after the filters, or a local reply. reqTrailers are
	// the request trailers sent upstream: the client's, as the filters
	// left them. They are outside streamState too: recycle empties them
	// and keeps their storage, where it copied the three maps out and
	// back around clearing the state (some 70 instructions and 5 cache
	// lines a request).
	respHeaders  stream.HeaderMap
	respTrailers stream.HeaderMap
	reqTrailers  stream.HeaderMap
	streamState
}

// streamState is everything of an active stream but its context. recycle
// clears requestState whole, and the rest only when the stream used it:
// each line it clears is a cache miss (the stream was last touched a
// connection's round trip ago), and the plain request (no filter, no
// body) never writes chainStore, streamBody or counter.
type streamState struct {
	requestState
	// chain is what fm points at; a chain without filters writes only
	// its first fields (filterManager.resetEmpty).
	chain filterManager
	// chainStore holds the chain's filters (up to maxInlineFilters):
	// written only by makeFilters, for a route with filters.
	chainStore chainStorage
	// streamBody and counter are the request body's readers (the codec's
	// body, and what counts it for the access log when no filter reads
	// it), written only for a request with a body (contentLength != 0).
	// Once replay has read its source to the end, nothing reads them again
	// (reusable).
	streamBody streamBody
	counter    receivedCounter
}

// requestState is what recycle clears on every stream.
type requestState struct {
	cm   *ConnectionManager
	ss   stream.ServerStream
	snap *Snapshot
	rt   *route.Route
	ri   *routeInfo
	s    *filterStream
	fm   *filterManager
	// filters and chain are what s and fm point at: one allocation for
	// the stream.
	filters filterStream
	// upstreamResp is the upstream's response being sent, closed when the
	// stream ends.
	upstreamResp upstream.Response
	status       int
	sent         int64
	received     int64
	upstream     string
	cluster      string
	details      string
	wroteHdr     bool
	// idle is the stream idle timeout (idleState); nil when disabled.
	idle      *streamIdle
	idleState streamIdle
	// timerFired: the stream's timer ended its context.
	timerFired bool
	// pickRnd is the stream's one random draw for the weighted backend
	// choice: the cluster filters see before the pick (ResolveCluster)
	// and the router's pick agree unless a filter changed what the
	// choice depends on.
	pickRnd uint64
	// upstreamStart is when the first try went upstream, after the
	// stream's start (an offset: one monotonic clock read, where a
	// time.Now reads two clocks); upstreamTime how long until the
	// response headers came (0 without a response); retries counts the
	// tries after the first. For the access log.
	upstreamStart time.Duration
	upstreamTime  time.Duration
	retries       int
	// bodyRead is what was read of the request body from the client
	// (receivedCounter unfiltered, readChunk through the filters).
	bodyRead atomic.Int64

	// What the router needs of the request besides its map: the body
	// (the codec's, wrapped by the stream idle timeout), its declared
	// length (-1 unknown), whether the client declared trailers, the
	// client's address and the downstream's HTTP major version.
	body             io.ReadCloser
	contentLength    int64
	declaredTrailers bool
	remoteAddr       string
	protoMajor       int
	// reqMask is what sanitizeRequestHeaders found of the request's
	// hop-by-hop and X-Forwarded-* fields (its mask).
	reqMask uint16
	// reqID is the stream's x-request-id (in reqIDBuf when it fits);
	// reqIDStr its string, made when something reads one.
	reqID    []byte
	reqIDBuf [36]byte
	reqIDStr string
	// firstTry is the first upstream try's request when it has no body
	// (a try with a body, and a retry, makes its own: the transport's
	// body writer may still read it after the stream ended).
	firstTry upstream.Request
	// replay is what the tries read the request body through (streamBody
	// and counter, below), kept for replay; trailersUpstream says the
	// tries were given reqTrailers to send.
	replay           *replayBody
	trailersUpstream bool
}

// requestBody is the request's body as the codec delivers it, with the
// trailers copied into x.reqTrailers at its end; http.NoBody when the
// request has none. n is its length as the codec declared it (-1
// unknown).
func (x *activeStream) requestBody(n int64) io.ReadCloser {
	if n == 0 {
		return http.NoBody
	}
	x.streamBody = streamBody{ss: x.ss, trailers: &x.reqTrailers}
	return &x.streamBody
}

// protoMajor is the HTTP major version of a connection's protocol.
func protoMajor(protocol string) int {
	switch protocol {
	case "HTTP/2":
		return 2
	case "HTTP/3":
		return 3
	}
	return 1
}

// remoteAddress and localAddress are the connection's addresses as
// text: formatted once per connection by the codec, else here.
func remoteAddress(c *stream.ConnectionInfo) string {
	if c.RemoteAddress == "" && c.Remote != nil {
		return stream.AddrString(c.Remote)
	}
	return c.RemoteAddress
}

func localAddress(c *stream.ConnectionInfo) string {
	if c.LocalAddress == "" && c.Local != nil {
		return stream.AddrString(c.Local)
	}
	return c.LocalAddress
}

// declaresTrailers reports a Trailer field that names at least one field.
func declaresTrailers(h *stream.HeaderMap) bool {
	for i := range h.Len() {
		name, value := h.At(i)
		if string(name) == "trailer" && len(bytes.Trim(value, " \t,")) > 0 {
			return true
		}
	}
	return false
}

// hasTrailers reports request trailers: declared by the client, or come
// with the body.
func (x *activeStream) hasTrailers() bool {
	return x.declaredTrailers || x.reqTrailers.Len() > 0
}

// streamBody is the request body: the codec's, with the trailers copied
// at the end. The upstream
// transport reads it on a goroutine of its own that may outlive the
// stream (a server that answered before the body's end), and a codec
// may reuse its stream for the next request once ServeStream returns: a
// read holds mu for its whole length, and close (at the stream's end)
// waits for one in flight, resetting the stream to end it, so that no
// read reaches the codec afterwards.
type streamBody struct {
	ss stream.ServerStream
	// trailers gets a copy of the request's trailers at the body's end:
	// what is sent upstream, which may be read after the stream ended.
	trailers *stream.HeaderMap
	mu       sync.Mutex
	inFlight atomic.Bool
	// read: some of the body was read; done: all of it.
	read   bool
	done   bool
	closed bool
}

var errStreamEnded = errors.New("request body read after the stream ended")

// close ends the body's use of the codec's stream.
func (b *streamBody) close() {
	if !b.mu.TryLock() {
		if b.inFlight.Load() {
			// A read blocks on a client that stopped sending: the body
			// will not be read to its end, so the stream is abandoned
			// (after a complete response, only its request side).
			b.ss.Reset(stream.ResetCancel)
		}
		b.mu.Lock()
	} else if b.read && !b.done && oneAtATime(b.ss.Connection()) {
		// The body was cut short (an upstream that answered before its
		// end): on HTTP/1.x its rest cannot be told from the next request
		// without reading it, from a client that may send nothing more,
		// so the connection closes after the response, as Envoy does.
		// HTTP/2 ends the stream itself (RST_STREAM NO_ERROR).
		b.ss.Reset(stream.ResetCancel)
	}
	b.closed = true
	b.mu.Unlock()
}

func (b *streamBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errStreamEnded
	}
	if b.done {
		return 0, io.EOF
	}
	b.inFlight.Store(true)
	n, err := b.ss.ReadBody(p)
	b.inFlight.Store(false)
	b.read = true
	if err == io.EOF {
		b.done = true
		if tr := b.ss.RequestTrailers(); tr != nil {
			copyFields(b.trailers, tr)
		}
	}
	return n, err
}

func (b *streamBody) Close() error { return nil }

func (x *activeStream) fillInfo(start time.Time) {
	conn := x.ss.Connection()
	info := &x.s.info
	info.ID = x.cm.streamIDs.Add(1)
	// Filters read it (Wasm's request.id, a trap's log line) as a view
	// of the stream's buffer: a string is made only when one does.
	info.RequestIDBytes = x.reqID
	info.Start = start
	info.Protocol = conn.Protocol
	info.Scheme = conn.Scheme
	if info.Scheme == "" {
		info.Scheme = "http"
	}
	info.RouteName = x.rt.Name
	info.RouteMetadata = x.rt.Metadata
	info.Source = x.remoteAddr
	info.Destination = localAddress(conn)
	info.ConnectionID = conn.ID
	if conn.TLS != nil {
		x.fillTLS(conn)
	}
	info.RequestSize = x.contentLength
}

// fillTLS notes the connection's TLS state for the filters: worked out
// once per connection (the listener's ConnContext). Kept out of line: the
// plain request comes over plain TCP.
//
//go:noinline
func (x *activeStream) fillTLS(conn *stream.ConnectionInfo) {
	x.s.info.TLS = mesh.ConnTLSInfo(x.ss.Context(), conn.TLS)
}

// buildChain makes the stream's filters. A plugin that cannot make a filter
// (every instance broken) is skipped when it fails open, and answers 503
// when it fails closed, as Envoy does.
func (x *activeStream) buildChain(lr *listenerRoutes) bool {
	x.fm = &x.chain
	if len(x.ri.factories) == 0 {
		// The chain is zero (a new stream, or one recycle cleared): only
		// what an empty chain has is set, in its first cache lines.
		x.chain.s, x.chain.limit = x.s, [2]int{lr.reqLimit, responseBufferLimit}
		x.chain.filters, x.chain.skipped = x.chainStore.filters[:0], x.chainStore.skipped[:0]
		return true
	}
	x.chain = filterManager{s: x.s, limit: [2]int{lr.reqLimit, responseBufferLimit}}
	return x.makeFilters()
}

// makeFilters is buildChain's work for a route with filters, kept out of
// line: the plain route has none, and the hot path stays in fewer cache
// lines.
//
//go:noinline
func (x *activeStream) makeFilters() bool {
	if n := len(x.ri.factories); n <= maxInlineFilters {
		x.chain.filters, x.chain.skipped = x.chainStore.filters[:0], x.chainStore.skipped[:0]
	} else {
		x.chain.filters, x.chain.skipped = make([]filter.HTTPFilter, 0, n), make([]filter.Callbacks, 0, n)
	}
	for k, fac := range x.ri.factories {
		f, err := fac.NewFilter(x.s.ctx, x.s)
		name := x.ri.plugins[k]
		if errors.Is(err, filter.ErrClosed) {
			// A reload closed this version between the snapshot load and
			// now: the current snapshot has its successor.
			if cur := x.cm.snap.Load().Filters[name]; cur != nil && cur != fac {
				fac = cur
				f, err = fac.NewFilter(x.s.ctx, x.s)
			}
		}
		if err != nil {
			if fac.FailOpen() {
				x.cm.log.Warn("plugin unavailable; skipped (failure = open)", zap.String("plugin", name), zap.Error(err))
				continue
			}
			x.cm.log.Error("plugin unavailable; request refused (failure = closed)", zap.String("plugin", name), zap.Error(err))
			for _, made := range x.chain.filters {
				made.OnDone(x.s)
			}
			x.chain = filterManager{s: x.s}
			x.localReply(&filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("plugin " + name + " unavailable\n"), Details: "wasm_fail_closed", GRPCStatus: grpcUnavailable})
			return false
		}
		x.chain.add(f)
	}
	return true
}

// responseBufferLimit bounds a response body a filter buffers (500 past it).
const responseBufferLimit = 16 << 20

// ResolveCluster answers cluster_name and cluster_metadata before the
// router picks: the backend the pick would choose now, from the request as
// the filters left it, the subset a filter set and the stream's draw.
func (x *activeStream) ResolveCluster(info *filter.Info) {
	b := x.rt.PickBackend(x.s.reqHeaders, string(info.FilterState[route.SubsetProperty]), x.pickRnd)
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

// localReply sends a reply made by sluice or a filter, unless the
// response has started.
func (x *activeStream) localReply(lr *filter.LocalReply) {
	if x.wroteHdr {
		return
	}
	x.details = lr.Details
	if x.s != nil {
		x.s.info.ResponseDetails = lr.Details
		// on_log and metrics read the status of local replies too.
		x.s.respHeaders, x.s.respTrailers = &x.respHeaders, &x.respTrailers
	}
	x.sent, lr = x.writeLocalReply(lr)
	if x.details != lr.Details {
		// A filter answered the reply with one of its own.
		x.details = lr.Details
		if x.s != nil {
			x.s.info.ResponseDetails = lr.Details
		}
	}
	x.status = lr.Status
}

// writeHeader sends the head of the upstream's response.
func (x *activeStream) writeHeader(h *stream.HeaderMap, endStream bool) {
	if x.idle != nil {
		x.idle.responseStarted()
	}
	x.sendHead(h, endStream)
}

// sendHead sends the response head h. A local reply sends its head here directly:
// it does not start the response for the stream idle timeout (it is what
// a stream that timed out sends).
func (x *activeStream) sendHead(h *stream.HeaderMap, endStream bool) {
	if _, ok := h.GetPseudo(stream.PseudoStatus); ok {
		x.status = filter.StatusOf(h)
	}
	if x.cm.AltSvc != "" && !h.Has("alt-svc") {
		h.Add("alt-svc", x.cm.AltSvc)
	}
	x.wroteHdr = true
	x.ss.WriteHeaders(h, endStream)
}

// write sends response body bytes.
func (x *activeStream) write(p []byte) error {
	err := x.ss.WriteBody(p, false)
	if err == nil {
		x.sent += int64(len(p))
		if x.idle != nil && len(p) > 0 {
			x.idle.progress()
		}
	}
	return err
}

func (x *activeStream) flush() {
	x.ss.Flush()
	if x.idle != nil {
		x.idle.progress()
	}
}

// end completes the response, with trailers when t has any.
func (x *activeStream) end(t *stream.HeaderMap) {
	if t.Len() == 0 {
		x.ss.WriteBody(nil, true)
		return
	}
	x.ss.WriteTrailers(t)
}

// reset abandons a response already started: what came is flushed, then
// HTTP/1.1 closes the connection and HTTP/2 resets the stream.
func (x *activeStream) reset(details string) {
	x.details = details
	x.ss.Flush()
	x.ss.Reset(stream.ResetCancel)
}

func statusText(code int) string {
	if code >= 100 && code <= 999 {
		var b [3]byte
		b[0], b[1], b[2] = byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10)
		return string(b[:])
	}
	return "500"
}

// copyFields replaces dst's fields with copies of src's.
func copyFields(dst, src *stream.HeaderMap) {
	dst.Reset()
	for name, value := range src.All() {
		dst.AddBytes(name, value)
	}
}
