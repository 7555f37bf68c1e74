package proxy

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Active streams are reused, so that a plain request allocates neither
// the active stream nor its context's channel, its timer or its
// registration on the codec's context. An HTTP/1.x connection serves one
// stream at a time: its active stream is kept on the connection
// (stream.ConnectionInfo.HandlerState) for the next, with the context's
// registration on the connection's context. Other protocols take one from
// streamPool.
//
// An active stream is reused only when nothing can touch it once its
// stream has ended (reusable): no filter (a filter may call back later, on
// a goroutine of its own), a request body read to its end by the tries
// (an upstream that answered early may still be reading it) with no
// trailers sent after it, no tunnel, a timer stopped before it fired and
// a context that did not end and that nothing waits on. Any other stream
// is left to the collector, its context cancelled, as before.
var streamPool = sync.Pool{New: func() any { return new(activeStream) }}

// testHookRecycled, when set by a test, sees each active stream as it is
// recycled.
var testHookRecycled func(*activeStream)

// acquireStream returns the active stream for ss: the connection's own on
// HTTP/1.x, else one from the pool.
func (cm *ConnectionManager) acquireStream(ss stream.ServerStream) *activeStream {
	conn := ss.Connection()
	var x *activeStream
	if oneAtATime(conn) {
		if kept, ok := conn.HandlerState.(*activeStream); ok && kept.cm == cm {
			x = kept
		}
		conn.HandlerState = nil
	}
	if x == nil {
		x = streamPool.Get().(*activeStream)
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
		return
	}
	x.recycle()
	if testHookRecycled != nil {
		testHookRecycled(x)
	}
	if perConn {
		x.cm = cm
		conn.HandlerState = x
		return
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
		(x.ri == nil || len(x.ri.plugins) == 0) &&
		!x.timerFired && x.status != http.StatusSwitchingProtocols
}

// recycle clears every field of x for the next stream, keeping only
// storage that holds nothing of the request: the timer (stopped) and the
// header maps' emptied buffers. The context is not touched here: release
// readied it for reuse, and its registration on the connection's context
// may fire at any time (it takes the context's lock).
func (x *activeStream) recycle() {
	timer := x.idleState.timer
	x.respHeaders.Reset()
	x.respTrailers.Reset()
	x.reqTrailers.Reset()
	respHeaders, respTrailers, reqTrailers := x.respHeaders, x.respTrailers, x.reqTrailers

	x.streamState = streamState{}

	x.idleState.timer = timer
	x.respHeaders, x.respTrailers, x.reqTrailers = respHeaders, respTrailers, reqTrailers
}
