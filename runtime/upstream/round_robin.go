package upstream

import "sync/atomic"

// maxRRSequence bounds the precomputed weighted sequence; larger weight
// sums are scaled down, which keeps ratios to within about 1/4096.
const maxRRSequence = 4096

// roundRobin walks a precomputed sequence in which each endpoint appears
// in proportion to its weight, interleaved by smooth weighted round robin
// (nginx's) so heavy endpoints do not get bursts. A pick is one atomic add.
type roundRobin struct {
	seq  []*endpoint
	next atomic.Uint64
}

func newRoundRobin(hosts []*endpoint) loadBalancer {
	return &roundRobin{seq: weightedSequence(hosts)}
}

func weightedSequence(hosts []*endpoint) []*endpoint {
	w := make([]int, len(hosts))
	g, total := 0, 0
	for i, h := range hosts {
		w[i] = h.weightOr1()
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxRRSequence {
		scaled := 0
		for i := range w {
			w[i] = max(1, w[i]*maxRRSequence/total)
			scaled += w[i]
		}
		total = scaled
	}
	if total == len(hosts) {
		return append([]*endpoint(nil), hosts...)
	}
	seq := make([]*endpoint, 0, total)
	cur := make([]int, len(hosts))
	for range total {
		best := 0
		for i := range hosts {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, hosts[best])
	}
	return seq
}

func (r *roundRobin) pick(string) *endpoint {
	n := uint64(len(r.seq))
	start := r.next.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		if h := r.seq[(start+i)%n]; h.available() {
			if i > 0 {
				// Skip past the unavailable run so the next pick does not
				// land on the same fallback endpoint.
				r.next.Add(i)
			}
			return h
		}
	}
	return r.seq[start%n]
}
