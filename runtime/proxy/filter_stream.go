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
	wake    chan struct{}
}

func newFilterStream(ctx context.Context, req *stream.HeaderMap) *filterStream {
	return &filterStream{ctx: ctx, reqHeaders: req, wake: make(chan struct{}, 1)}
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
	select {
	case s.wake <- struct{}{}:
	default:
	}
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
		s.mu.Lock()
		done := s.resumed[d] || s.local != nil
		s.resumed[d] = false
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}
