package server

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/clock"
)

// proxyHTTP1ClockReads is how many readings of the clock (runtime/clock)
// a plain HTTP/1.1 request through the proxy takes: the codec's idle
// deadline, the stream's start (wall and monotonic, for the access log;
// on a route without filters also the upstream try's start and the
// pool's idle ages, as nothing between them waits), the response head
// (shared with the upstream timing, the stream's progress and the
// connection's idle stamp) and the stream's end (its duration). The body
// that came whole with the head leaves in the write that ends the
// stream, with no progress to note after it. It was nine (ten clock
// calls) before the readers of one moment shared theirs, six before the
// upstream try's start shared the stream's, five before the last write
// ended the stream.
const proxyHTTP1ClockReads = 4

// TestProxyHTTP1ClockReads pins the readings per plain request through
// real sockets, so that one added on the path shows here (lower the
// constant when a change removes one).
func TestProxyHTTP1ClockReads(t *testing.T) {
	roundTrip := startRawProxyPath(t, benchRequest)
	const n = 200
	count, stop := clock.Counting()
	for range n {
		roundTrip()
	}
	// The last request's stream may end (and read the clock for its
	// duration) just after its client has the answer: wait for it, but
	// not for ever, so that a reading fewer shows too.
	for deadline := time.Now().Add(2 * time.Second); count() < n*proxyHTTP1ClockReads && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	stop()
	// A timer of the connection's may fire meanwhile and read the clock
	// once or twice: that is not the request's.
	if got := count(); got > n*proxyHTTP1ClockReads+2 || got < n*proxyHTTP1ClockReads {
		t.Errorf("%d clock readings for %d requests (%.2f each), want %d each", got, n, float64(got)/n, proxyHTTP1ClockReads)
	}
}
