package proxy

import (
	"net/http"
	"sync"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// filterManager runs a route's filter chain for one stream, as Envoy's
// filter manager does: request callbacks in route order, response callbacks
// in reverse order, pauses waited out, body buffering bounded.
type filterManager struct {
	// The fields up to mu and ended are those a chain without filters
	// sets or may set (buildChain's, a local reply's): kept together, in
	// two cache lines, where the plain request writes them and recycle
	// clears them (resetEmpty). Those after are written only through
	// filters.
	s       *filterStream
	filters []filter.HTTPFilter
	// skipped is, per filter, the callbacks it said it has no use for
	// (filter.Skipper): the manager does not call them.
	skipped []filter.Callbacks
	limit   [2]int
	// started counts the filters, in request order, that the request
	// headers reached (the one that answered locally included): a local
	// reply goes back through their response callbacks (encodeLocal).
	started int
	// wantsBody says, per direction, whether some filter wants its body
	// or trailers; when none does the body goes as on a route without
	// filters (untouched, streamed, its length kept).
	wantsBody [2]bool
	// final: every filter's OnDone is its last call on the stream
	// (filter.Finisher), so the active stream may be reused.
	final bool
	// encoding is set once response callbacks have begun: a local reply
	// made from then on goes to the client as it is, as Envoy's does.
	encoding bool

	// mu is held for each filter callback, and ended, set under it when
	// the stream ends, is checked before each: the request body may still
	// be pumped through the chain on the upstream transport's goroutine
	// after the stream's goroutine has the whole response (an upstream
	// that answered before the body's end), and a filter gets no call
	// after its OnDone (Envoy's onDestroy), nor two at once (the response
	// callbacks run meanwhile on the stream's goroutine). A pause is
	// waited out without it.
	mu    sync.Mutex
	ended bool

	// buffered holds, per filter and direction, the body a filter asked to
	// buffer (StopIterationAndBuffer) until end of stream; made when a
	// filter first holds.
	buffered [2][][]byte
	holding  [2][]bool
	total    [2]int
	// body is the chunk handed to a body callback (in the stream, so a
	// call does not allocate it).
	body filter.Body

	// startFeed, set while the request body is unread, lets a pause in the
	// request headers keep the body flowing to the paused filter (see
	// bodyFeed); feed is the running one.
	startFeed   func() *bodyFeed
	hasTrailers func() bool
	feed        *bodyFeed
}

// resetEmpty clears what a chain that never had filters may have set
// (the fields before buffered), leaving the rest, zero then, alone: the
// plain request's recycle writes two cache lines of the chain, not five.
func (fm *filterManager) resetEmpty() {
	fm.s, fm.filters, fm.skipped = nil, nil, nil
	fm.limit, fm.started = [2]int{}, 0
	fm.wantsBody, fm.final, fm.encoding = [2]bool{}, false, false
	fm.mu, fm.ended = sync.Mutex{}, false
}

// errChainEnded is the reply a callback gets in place of a filter's
// answer once the stream has ended: only a body pump still running on the
// upstream transport's goroutine sees it, and stops.
var errChainEnded = &filter.LocalReply{Details: "stream_ended"}

// enter locks the chain for one filter callback; false (unlocked) once
// the stream has ended.
func (fm *filterManager) enter() bool {
	fm.mu.Lock()
	if fm.ended {
		fm.mu.Unlock()
		return false
	}
	return true
}

// end ends the chain for callbacks from the body pump: it waits for one
// in progress, and none starts afterwards. The stream's goroutine then
// has the filters to itself for OnLog and OnDone.
func (fm *filterManager) end() {
	fm.mu.Lock()
	fm.ended = true
	fm.mu.Unlock()
}

// maxInlineFilters is how many filters a stream keeps without an
// allocation (chainStorage); a longer chain allocates its slices.
const maxInlineFilters = 8

// chainStorage is the per-stream storage of a chain of up to
// maxInlineFilters filters, inside the (pooled) active stream.
type chainStorage struct {
	filters [maxInlineFilters]filter.HTTPFilter
	skipped [maxInlineFilters]filter.Callbacks
}

// add appends f to the chain and notes what it skips.
func (fm *filterManager) add(f filter.HTTPFilter) {
	var skip filter.Callbacks
	if sk, ok := f.(filter.Skipper); ok {
		skip = sk.SkippedCallbacks()
	}
	fin, ok := f.(filter.Finisher)
	fm.final = (len(fm.filters) == 0 || fm.final) && ok && fin.DoneIsFinal()
	fm.filters = append(fm.filters, f)
	fm.skipped = append(fm.skipped, skip)
	for _, d := range [2]filter.Direction{filter.Request, filter.Response} {
		if b := filter.BodyCallbacks(d); skip&b != b {
			fm.wantsBody[d] = true
		}
	}
}

// skips says whether filter i skips callback cb.
func (fm *filterManager) skips(i int, cb filter.Callbacks) bool { return fm.skipped[i]&cb != 0 }

func headersCallback(d filter.Direction) filter.Callbacks {
	if d == filter.Request {
		return filter.RequestHeadersCallback
	}
	return filter.ResponseHeadersCallback
}

func bodyCallback(d filter.Direction) filter.Callbacks {
	if d == filter.Request {
		return filter.RequestBodyCallback
	}
	return filter.ResponseBodyCallback
}

func trailersCallback(d filter.Direction) filter.Callbacks {
	if d == filter.Request {
		return filter.RequestTrailersCallback
	}
	return filter.ResponseTrailersCallback
}

func (fm *filterManager) empty() bool { return len(fm.filters) == 0 }

// order yields filter indexes for direction d: forward for requests,
// reverse for responses.
func (fm *filterManager) index(d filter.Direction, k int) int {
	if d == filter.Request {
		return k
	}
	return len(fm.filters) - 1 - k
}

// headers runs the headers callbacks; a non-nil reply means a filter
// answered locally and the chain stopped.
func (fm *filterManager) headers(d filter.Direction, endOfStream bool) *filter.LocalReply {
	return fm.headersRange(d, endOfStream, 0, len(fm.filters))
}

// headersRange is headers through the filters at positions [from, to) of
// direction d's order.
func (fm *filterManager) headersRange(d filter.Direction, endOfStream bool, from, to int) *filter.LocalReply {
	if d == filter.Response {
		fm.encoding = true
	}
	for k := from; k < to; k++ {
		i := fm.index(d, k)
		if d == filter.Request {
			fm.started = k + 1
		}
		if fm.skips(i, headersCallback(d)) {
			continue
		}
		f := fm.filters[i]
		fm.s.clearResumed(d)
		if !fm.enter() {
			return errChainEnded
		}
		var st filter.Status
		if d == filter.Request {
			st = f.OnRequestHeaders(fm.s, endOfStream)
		} else {
			st = f.OnResponseHeaders(fm.s, endOfStream)
		}
		fm.mu.Unlock()
		if st != filter.Continue && d == filter.Request && fm.startFeed != nil && fm.feed == nil {
			if lr := fm.s.takeLocal(); lr != nil {
				return lr
			}
			fm.feed = fm.startFeed()
			if lr := fm.waitFeeding(k, fm.hasTrailers); lr != nil {
				return lr
			}
			continue
		}
		if lr := fm.afterCallback(d, st); lr != nil {
			return lr
		}
	}
	return nil
}

// encodeLocal runs a local reply made before the response began through
// the response callbacks of the filters the request reached, in reverse
// order, as Envoy's filter manager sends such a reply through its encoder
// filters (sendLocalReplyViaFilterChain); a filter the request never
// reached is left out, as Envoy's Wasm filter skips a context the request
// never created. So a CORS filter before an authentication filter puts
// its headers on the 401 (as Envoy's and Kong's do), and a filter after
// it sees nothing of the stream. The head is the filters' to change; the
// body (unless endOfStream) passes the filters that want it, whole. It
// returns the body as they left it, or another local reply one of them
// made, which goes out as it is.
func (fm *filterManager) encodeLocal(body []byte, endOfStream bool) ([]byte, *filter.LocalReply) {
	from, to := len(fm.filters)-fm.started, len(fm.filters)
	if lr := fm.headersRange(filter.Response, endOfStream, from, to); lr != nil {
		return nil, lr
	}
	if endOfStream || !fm.wantsBody[filter.Response] {
		return body, nil
	}
	// A copy: a filter may edit the chunk in place, and the reply's body
	// may be shared.
	return fm.dataRange(filter.Response, append([]byte(nil), body...), true, from, to)
}

// trailers runs the trailers callbacks.
func (fm *filterManager) trailers(d filter.Direction) *filter.LocalReply {
	for k := range fm.filters {
		i := fm.index(d, k)
		if fm.skips(i, trailersCallback(d)) {
			continue
		}
		f := fm.filters[i]
		fm.s.clearResumed(d)
		if !fm.enter() {
			return errChainEnded
		}
		var st filter.Status
		if d == filter.Request {
			st = f.OnRequestTrailers(fm.s)
		} else {
			st = f.OnResponseTrailers(fm.s)
		}
		fm.mu.Unlock()
		if lr := fm.afterCallback(d, st); lr != nil {
			return lr
		}
	}
	return nil
}

// afterCallback waits out a pause and picks up a local reply.
func (fm *filterManager) afterCallback(d filter.Direction, st filter.Status) *filter.LocalReply {
	if lr := fm.s.takeLocal(); lr != nil {
		return lr
	}
	if st == filter.Continue {
		return nil
	}
	if err := fm.s.waitResume(d); err != nil {
		return pauseTimeoutReply()
	}
	return fm.s.takeLocal()
}

func pauseTimeoutReply() *filter.LocalReply {
	return &filter.LocalReply{Status: http.StatusGatewayTimeout, Body: []byte("filter did not resume the stream in time\n"), Details: "filter_pause_timeout", GRPCStatus: grpcDeadlineExceeded}
}

// data passes one body chunk through the chain. It returns the bytes to
// forward (nil while a filter buffers) or a local reply.
func (fm *filterManager) data(d filter.Direction, chunk []byte, endOfStream bool) ([]byte, *filter.LocalReply) {
	return fm.dataRange(d, chunk, endOfStream, 0, len(fm.filters))
}

// dataRange is data through the filters at positions [from, to) of
// direction d's order.
func (fm *filterManager) dataRange(d filter.Direction, chunk []byte, endOfStream bool, from, to int) ([]byte, *filter.LocalReply) {
	for k := from; k < to; k++ {
		i := fm.index(d, k)
		if fm.skips(i, bodyCallback(d)) {
			// It never holds: a skipped callback would say Continue.
			continue
		}
		f := fm.filters[i]
		if fm.holding[d] != nil && fm.holding[d][i] {
			fm.buffered[d][i] = append(fm.buffered[d][i], chunk...)
			fm.total[d] += len(chunk)
			if fm.total[d] > fm.limit[d] {
				return nil, fm.overLimit(d)
			}
			if !endOfStream {
				return nil, nil
			}
			chunk = fm.buffered[d][i]
			fm.buffered[d][i] = nil
			fm.holding[d][i] = false
		}
		fm.s.clearResumed(d)
		if !fm.enter() {
			return nil, errChainEnded
		}
		fm.body.Data = chunk
		var st filter.Status
		if d == filter.Request {
			st = f.OnRequestBody(fm.s, &fm.body, endOfStream)
		} else {
			st = f.OnResponseBody(fm.s, &fm.body, endOfStream)
		}
		chunk = fm.body.Data
		fm.body.Data = nil
		fm.mu.Unlock()
		if lr := fm.s.takeLocal(); lr != nil {
			return nil, lr
		}
		if st == filter.Continue {
			continue
		}
		if endOfStream {
			// Nothing more will come: a stop here is a pause of the
			// whole stream until the filter resumes it.
			if lr := fm.afterCallback(d, filter.StopIteration); lr != nil {
				return nil, lr
			}
			continue
		}
		if fm.holding[d] == nil {
			fm.holding[d] = make([]bool, len(fm.filters))
			fm.buffered[d] = make([][]byte, len(fm.filters))
		}
		fm.holding[d][i] = true
		fm.buffered[d][i] = append(fm.buffered[d][i][:0], chunk...)
		fm.total[d] += len(chunk)
		if fm.total[d] > fm.limit[d] {
			return nil, fm.overLimit(d)
		}
		return nil, nil
	}
	return chunk, nil
}

// holdingAny reports whether some filter is buffering direction d.
func (fm *filterManager) holdingAny(d filter.Direction) bool {
	for _, h := range fm.holding[d] {
		if h {
			return true
		}
	}
	return false
}

func (fm *filterManager) overLimit(d filter.Direction) *filter.LocalReply {
	if d == filter.Request {
		return &filter.LocalReply{Status: http.StatusRequestEntityTooLarge, Body: []byte("request body too large to buffer\n"), Details: "request_payload_too_large", GRPCStatus: grpcResourceExhausted}
	}
	return &filter.LocalReply{Status: http.StatusInternalServerError, Body: []byte("response body too large to buffer\n"), Details: "response_payload_too_large", GRPCStatus: grpcInternal}
}

// log and done run on the stream's goroutine after end.
func (fm *filterManager) log() {
	for i, f := range fm.filters {
		if !fm.skips(i, filter.LogCallback) {
			f.OnLog(fm.s)
		}
	}
}

func (fm *filterManager) done() {
	for _, f := range fm.filters {
		f.OnDone(fm.s)
	}
}
