package proxy

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Active streams are reused, so that a plain request allocates neither
// the active stream, its timer nor its context with the context's channel
// and registration on the codec's context. Active streams come from
// streamPool. An HTTP/1.x connection serves one stream at a time, and
// keeps the stream context (stream.ConnectionInfo.HandlerState) for its
// next stream, with the context's registration on the connection's
// context: a few hundred bytes per idle connection, where the whole
// active stream would be about 1.5 KB.
//
// An active stream is reused only when nothing can touch it once its
// stream has ended (reusable): no filter, or only filters whose OnDone is
// their last call on the stream (filter.Finisher: a filter may otherwise
// call back later, on a goroutine of its own) and no body feed, a request body read to its end by the tries
// (an upstream that answered early may still be reading it) with no
// trailers sent after it, no tunnel, a timer that did not end the stream
// (it serves a stream only between begin and stop, under its mutex, so a
// firing after that touches nothing of it) and a context that did not
// end and that nothing waits on. Any other stream
// is left to the collector, its context cancelled, as before.
var streamPool = sync.Pool{New: func() any { return new(activeStream) }}

// testHookRecycled, when set by a test, sees each active stream as it is
// recycled.
var testHookRecycled func(*activeStream)

// acquireStream returns the active stream for ss, with its context: the
// connection's on HTTP/1.x when it kept one, else the stream's own.
func (cm *ConnectionManager) acquireStream(ss stream.ServerStream) *activeStream {
	conn := ss.Connection()
	x := streamPool.Get().(*activeStream)
	if oneAtATime(conn) {
		if kept, ok := conn.HandlerState.(*streamContext); ok {
			x.ctx = kept
		}
		conn.HandlerState = nil
	}
	if x.ctx == nil {
		x.ctx = new(streamContext)
	}
	x.cm, x.ss = cm, ss
	x.ctx.begin(ss.Context(), time.Time{})
	return x
}

// releaseStream ends x's stream and keeps x for reuse when it may be;
// served is false when ServeStream is unwinding a panic.
func (cm *ConnectionManager) releaseStream(x *activeStream, served bool) {
	conn := x.ss.Connection()
	perConn := oneAtATime(conn)
	if !x.ctx.release(served && x.reusable(), perConn) {
		// Left to the collector with all it holds (its snapshot, its
		// filters): its timer, which may run until the stream's timeouts
		// would have, must not keep it.
		x.timer.halt()
		return
	}
	if perConn {
		conn.HandlerState = x.ctx
		x.ctx = nil
	}
	x.recycle()
	if testHookRecycled != nil {
		testHookRecycled(x)
	}
	streamPool.Put(x)
}

// oneAtATime says whether a connection serves its streams one at a time
// (HTTP/1.x), so that its active stream can wait on it for the next.
func oneAtATime(conn *stream.ConnectionInfo) bool {
	return strings.HasPrefix(conn.Protocol, "HTTP/1.")
}

// reusable says whether nothing can reach x once its stream has ended.
// A request body is done with when the tries' replay buffer read it to
// its end: the readers in x (streamBody, counter, the idle timeout's
// wrapper) are then never read again; the tries' own request and replay
// views are not in x, and the trailers they would send are.
func (x *activeStream) reusable() bool {
	bodyDone := x.body == nil || x.body == http.NoBody ||
		x.replay != nil && !x.trailersUpstream && x.replay.sourceDone()
	return bodyDone &&
		(x.ri == nil || len(x.ri.plugins) == 0 || x.fm != nil && x.fm.final && x.fm.feed == nil) &&
		!x.timerFired && x.status != http.StatusSwitchingProtocols
}

// recycle clears every field of x for the next stream, keeping only
// storage that holds nothing of the request: the header maps' emptied
// buffers. The context, when x keeps it, and the timer, which serves no
// stream now, are outside the cleared state: release readied the context
// for reuse.
func (x *activeStream) recycle() {
	x.respHeaders.Reset()
	x.respTrailers.Reset()
	x.reqTrailers.Reset()
	filterState := keptFilterState(x.filters.info.FilterState)

	// Only a route with filters fills chainStore and chain past its first
	// fields (filterManager.resetEmpty), and only a request with a body
	// sets streamBody and counter: the plain request leaves their cache
	// lines alone, and so does recycle then.
	filtered := x.ri != nil && len(x.ri.factories) != 0
	withBody := x.contentLength != 0
	x.requestState = requestState{}
	if filtered {
		x.chain = filterManager{}
		x.chainStore = chainStorage{}
	} else {
		x.chain.resetEmpty()
	}
	if withBody {
		x.streamBody = streamBody{}
		x.counter = receivedCounter{}
	}

	x.filters.info.FilterState = filterState
}

// keptFilterStateMax bounds the filter state map a recycled stream keeps:
// a map does not shrink, and one a filter filled with many keys is left
// to the collector.
const keptFilterStateMax = 16

// keptFilterState empties m for the next stream, or drops it when it is
// large. Filters on a route that sets properties (jwt's consumer, a
// canary's subset) made a map per request, the largest allocation left
// on such a route, and with it collections that cost the proxy more than
// the map: a recycled stream's filters have all had their last call
// (OnDone), so nothing holds the map.
func keptFilterState(m map[string][]byte) map[string][]byte {
	if len(m) > keptFilterStateMax {
		return nil
	}
	if len(m) == 0 {
		// Nothing to clear (no map, mostly): no runtime call.
		return m
	}
	clear(m)
	return m
}
