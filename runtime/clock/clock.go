// Package clock is the request path's clock: every reading the HTTP/1.1
// codec, the connection manager and the upstream pool take of a request
// goes through it, so that a test can count them (Counting) and a change
// that adds one a request shows.
//
// Why count: a reading costs a vDSO call (time.Now two, the wall clock
// and the monotonic one), and the plain proxy path took fifteen a
// request before readings were shared between the readers of one
// moment. Where a reading is shared, the code that shares it says why
// the moment is the same one (no I/O, nothing that can wait, between).
package clock

import (
	"sync/atomic"
	"time"
)

// start is where Mono's readings count from.
var start = time.Now()

// counting and reads are the test hook: off, a reading costs one load
// of counting more than time's own call.
var (
	counting atomic.Bool
	reads    atomic.Int64
)

// Now is time.Now: the wall clock (what an access log prints) and the
// monotonic one (what durations subtract).
func Now() time.Time {
	if counting.Load() {
		reads.Add(1)
	}
	return time.Now()
}

// Mono is a reading of the monotonic clock alone, one clock call where
// Now makes two, as the time since the process's clock started: for ages
// and deadlines, which only subtract readings. A plain number, because
// making a time.Time of it (time.Time.Add) cost more instructions than
// the reading.
func Mono() time.Duration {
	if counting.Load() {
		reads.Add(1)
	}
	return time.Since(start)
}

// MonoOf is t (Now's, which has a monotonic reading) on Mono's scale,
// without reading the clock.
func MonoOf(t time.Time) time.Duration { return t.Sub(start) }

// TimeOf is the time.Time of a Mono reading (for a deadline), without
// reading the clock.
func TimeOf(m time.Duration) time.Time { return start.Add(m) }

// Since is time.Since(t): one monotonic reading when t has a monotonic
// part (Now's and Mono's have).
func Since(t time.Time) time.Duration {
	if counting.Load() {
		reads.Add(1)
	}
	return time.Since(t)
}

// Counting starts counting readings from zero and returns what reads the
// count so far and what stops counting. For tests: the count is the whole
// process's.
func Counting() (count func() int64, stop func()) {
	reads.Store(0)
	counting.Store(true)
	return reads.Load, func() { counting.Store(false) }
}
