package upstream

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// endpoint is one upstream address of one cluster. Its health and outlier
// state belong to the cluster that made it: two clusters naming the same
// address get two endpoints.
type endpoint struct {
	addr   string // "ip:port" (or "host:port" when not resolved) dialed
	host   string // DNS name it came from, for SNI; "" for a literal IP
	labels map[string]string
	weight int

	active atomic.Int64 // requests in flight, for least_request and /clusters

	// unhealthy is set by the active health checker; ejected by the outlier
	// detector. The picker reads both without locks.
	unhealthy atomic.Bool
	ejected   atomic.Bool

	consecutive5xx atomic.Int32

	// Outlier bookkeeping, guarded by outlierDetector.mu.
	ejections   int
	lastUneject time.Time
	unejectAt   time.Time
	timer       *time.Timer

	// Health checker counters, owned by the checker goroutine.
	hcFails, hcPasses int
	removed           atomic.Bool
}

func (e *endpoint) available() bool { return !e.unhealthy.Load() && !e.ejected.Load() }

func (e *endpoint) weightOr1() int {
	if e.weight <= 0 {
		return 1
	}
	return e.weight
}

// hostSet is one immutable generation of a cluster's endpoints, with a
// load balancer per subset built on first use. Discovery replaces the whole
// set; endpoints whose address did not change are carried over so their
// health and outlier state survive.
type hostSet struct {
	hosts  []*endpoint
	byAddr map[string]*endpoint
	lb     loadBalancer

	newLB   lbFactory
	mu      sync.Mutex
	subsets atomic.Pointer[[]*subset]
}

const maxCachedSubsets = 64

type subset struct {
	labels map[string]string
	hosts  []*endpoint
	lb     loadBalancer
}

func newHostSet(hosts []*endpoint, newLB lbFactory) *hostSet {
	hs := &hostSet{hosts: hosts, byAddr: make(map[string]*endpoint, len(hosts)), newLB: newLB}
	for _, h := range hosts {
		hs.byAddr[h.addr] = h
	}
	if len(hosts) > 0 {
		hs.lb = newLB(hosts)
	}
	return hs
}

// balancerFor returns the load balancer over the endpoints carrying every
// label in sel (all endpoints for an empty sel), or nil when none match.
// Subsets are few (one per route backend), so a linear scan with
// maps.Equal beats hashing the selector on every request.
func (hs *hostSet) balancerFor(sel map[string]string) loadBalancer {
	if len(sel) == 0 {
		return hs.lb
	}
	return hs.subsetBalancer(sel)
}

// subsetBalancer is balancerFor with a selector. Out of line: a request
// without one (most) then takes balancerFor inlined, with no call and no
// frame (this one defers its unlock).
//
//go:noinline
func (hs *hostSet) subsetBalancer(sel map[string]string) loadBalancer {
	if p := hs.subsets.Load(); p != nil {
		for _, s := range *p {
			if maps.Equal(s.labels, sel) {
				return s.lb
			}
		}
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var cur []*subset
	if p := hs.subsets.Load(); p != nil {
		cur = *p
		for _, s := range cur {
			if maps.Equal(s.labels, sel) {
				return s.lb
			}
		}
	}
	s := &subset{labels: maps.Clone(sel)}
	for _, h := range hs.hosts {
		if matchLabels(h.labels, sel) {
			s.hosts = append(s.hosts, h)
		}
	}
	if len(s.hosts) > 0 {
		s.lb = hs.newLB(s.hosts)
	}
	if len(cur) >= maxCachedSubsets {
		// Selectors built from request data must not grow the cache
		// without bound; past the cap they are computed per request.
		return s.lb
	}
	next := make([]*subset, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, s)
	hs.subsets.Store(&next)
	return s.lb
}

func matchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}
