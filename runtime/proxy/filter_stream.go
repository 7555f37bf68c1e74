package proxy

import (
	"context"
	"sync"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// filterStream is one HTTP exchange as the filters see it. The proxy goroutine
// owns it; Resume and SendLocalReply may come from any goroutine (an
// http_call reply, a tick), so they go through mu and wake.
type filterStream struct {
	ctx          context.Context
	reqHeaders   *stream.HeaderMap
	reqTrailers  *stream.HeaderMap
	respHeaders  *stream.HeaderMap
	respTrailers *stream.HeaderMap
	info         filter.Info

	mu      sync.Mutex
	resumed [2]bool
	local   *filter.LocalReply
	// wake is made by the first wait (most streams never pause).
	wake chan struct{}
}

// init readies s for a stream (embedded in activeStream, no allocation).
func (s *filterStream) init(ctx context.Context, req *stream.HeaderMap) {
	s.ctx, s.reqHeaders = ctx, req
}

func (s *filterStream) Context() context.Context            { return s.ctx }
func (s *filterStream) RequestHeaders() *stream.HeaderMap   { return s.reqHeaders }
func (s *filterStream) RequestTrailers() *stream.HeaderMap  { return s.reqTrailers }
func (s *filterStream) ResponseHeaders() *stream.HeaderMap  { return s.respHeaders }
func (s *filterStream) ResponseTrailers() *stream.HeaderMap { return s.respTrailers }
func (s *filterStream) Info() *filter.Info                  { return &s.info }

func (s *filterStream) Resume(d filter.Direction) {
	s.mu.Lock()
	s.resumed[d] = true
	s.mu.Unlock()
	s.signal()
}

func (s *filterStream) SendLocalReply(r filter.LocalReply) {
	s.mu.Lock()
	if s.local == nil {
		s.local = &r
	}
	s.mu.Unlock()
	s.signal()
}

func (s *filterStream) signal() {
	s.mu.Lock()
	w := s.wake
	s.mu.Unlock()
	if w == nil {
		return // nobody waits yet; the waiter checks the flags first
	}
	select {
	case w <- struct{}{}:
	default:
	}
}

// resumedOrLocal says, once, whether direction d was resumed or a local
// reply sent; otherwise it returns the channel to wait on, made under the
// same lock so that a Resume that follows finds it.
func (s *filterStream) resumedOrLocal(d filter.Direction) (bool, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	done := s.resumed[d] || s.local != nil
	s.resumed[d] = false
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	return done, s.wake
}

// takeLocal returns the local reply a filter asked for, once.
func (s *filterStream) takeLocal() *filter.LocalReply {
	s.mu.Lock()
	defer s.mu.Unlock()
	lr := s.local
	s.local = nil
	return lr
}

// clearResumed forgets an earlier Resume, before a filter runs that may pause.
func (s *filterStream) clearResumed(d filter.Direction) {
	s.mu.Lock()
	s.resumed[d] = false
	s.mu.Unlock()
}

// waitResume blocks until the paused filter resumes direction d, a local
// reply is sent, or the stream's context ends.
func (s *filterStream) waitResume(d filter.Direction) error {
	for {
		done, wake := s.resumedOrLocal(d)
		if done {
			return nil
		}
		select {
		case <-wake:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}
