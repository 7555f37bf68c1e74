package http2

import "time"

// workerIdle is how long a handler goroutine waits for another stream
// before it ends: long enough to carry a steady load from one stream to
// the next, short enough that a burst's goroutines (and their stacks) do
// not stay.
const workerIdle = 2 * time.Second

// dispatch runs st's handler on an idle handler goroutine of the
// Server's, or on a new one when none is waiting. A go statement with an
// argument costs an allocation (its closure) and a new goroutine a stack
// that may have to grow again; a stream handed to a waiting goroutine
// costs neither. The channel is unbuffered: a send succeeds only when a
// goroutine is waiting for it, so a stream never queues behind another.
func (s *Server) dispatch(st *serverStream) {
	select {
	case s.work <- st:
	default:
		go s.worker(st)
	}
}

// worker serves st, then the streams dispatch hands it, until it has
// waited workerIdle for one.
func (s *Server) worker(st *serverStream) {
	wait := workerIdle
	if s.workerIdle > 0 {
		wait = s.workerIdle
	}
	idle := time.NewTimer(wait)
	defer idle.Stop()
	for {
		st.run()
		st = nil
		idle.Reset(wait)
		select {
		case st = <-s.work:
		case <-idle.C:
			return
		}
	}
}
