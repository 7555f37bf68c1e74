package upstream

import (
	"context"
	"slices"
	"sync"
)

// connSlots holds a cluster's http1 connection slots, one per request
// that owns a connection, so requests beyond max_connections wait as
// pending (Envoy's http1 pool) instead of failing. It is what a buffered
// channel of tokens would be: a free slot is taken at once, a request
// that finds none waits in arrival order and is handed the next slot
// given back. A channel's send and receive cost two calls into the
// runtime's channel code a request (some 20 distinct lines of code and
// 160 instructions between them); here the common case is a mutex's
// fast path and a count.
type connSlots struct {
	mu   sync.Mutex
	held int // slots taken, handed-over ones included
	max  int
	// waiters wait for a slot, in arrival order; one is closed when its
	// waiter is handed a slot. Never empty unless held < max would let
	// the next request in: a slot given back goes to the first waiter.
	waiters []chan struct{}
}

func newConnSlots(max int) *connSlots { return &connSlots{max: max} }

// tryTake takes a free slot; false when every slot is held (or others
// already wait for one).
func (s *connSlots) tryTake() bool {
	s.mu.Lock()
	ok := s.held < s.max && len(s.waiters) == 0
	if ok {
		s.held++
	}
	s.mu.Unlock()
	return ok
}

// take waits for a slot, after the requests that were waiting before it,
// until ctx ends (ctx's error then; a slot handed over as ctx ended is
// kept, as a channel send that won the race would have been).
func (s *connSlots) take(ctx context.Context) error {
	s.mu.Lock()
	if s.held < s.max && len(s.waiters) == 0 {
		s.held++
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	s.waiters = append(s.waiters, ready)
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ready:
		return nil // handed a slot meanwhile
	default:
	}
	if i := slices.Index(s.waiters, ready); i >= 0 {
		s.waiters = slices.Delete(s.waiters, i, i+1)
	}
	return ctx.Err()
}

// give gives a slot back: to the first waiter, or free.
func (s *connSlots) give() {
	s.mu.Lock()
	if len(s.waiters) > 0 {
		close(s.waiters[0])
		s.waiters[0] = nil
		s.waiters = s.waiters[1:]
	} else {
		s.held--
	}
	s.mu.Unlock()
}

// len is the number of slots held (0 for a nil connSlots, a cluster
// without slots).
func (s *connSlots) len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}
