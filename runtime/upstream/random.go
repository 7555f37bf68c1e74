package upstream

import (
	"math/rand/v2"
	"sort"
)

// randomLB picks uniformly, or in proportion to weight when weights
// differ (a binary search over cumulative weights).
type randomLB struct {
	hosts []*endpoint
	cum   []int // nil when all weights are equal
}

func newRandom(hosts []*endpoint) loadBalancer {
	r := &randomLB{hosts: hosts}
	equal := true
	for _, h := range hosts {
		if h.weightOr1() != hosts[0].weightOr1() {
			equal = false
			break
		}
	}
	if !equal {
		r.cum = make([]int, len(hosts))
		sum := 0
		for i, h := range hosts {
			sum += h.weightOr1()
			r.cum[i] = sum
		}
	}
	return r
}

func (r *randomLB) one() *endpoint {
	if r.cum == nil {
		return r.hosts[rand.IntN(len(r.hosts))]
	}
	x := rand.IntN(r.cum[len(r.cum)-1])
	return r.hosts[sort.SearchInts(r.cum, x+1)]
}

func (r *randomLB) pick(string) *endpoint {
	var first *endpoint
	for try := 0; try < 3; try++ {
		h := r.one()
		if h.available() {
			return h
		}
		if first == nil {
			first = h
		}
	}
	if h := firstAvailable(r.hosts); h != nil {
		return h
	}
	return first
}
