package upstream

import "math/rand/v2"

// leastRequest is Envoy's power of two choices: two random endpoints, the
// one with fewer active requests (divided by weight) wins. It avoids the
// herd a full scan for the global minimum causes when many pickers see the
// same snapshot.
type leastRequest struct {
	hosts []*endpoint
}

func newLeastRequest(hosts []*endpoint) loadBalancer {
	return &leastRequest{hosts: hosts}
}

func (l *leastRequest) pick(string) *endpoint {
	n := len(l.hosts)
	if n == 1 {
		return l.hosts[0]
	}
	var first *endpoint
	for try := 0; try < 3; try++ {
		i := rand.IntN(n)
		j := (i + 1 + rand.IntN(n-1)) % n
		a, b := l.hosts[i], l.hosts[j]
		if first == nil {
			first = a
		}
		aok, bok := a.available(), b.available()
		switch {
		case aok && bok:
			// Compare active/weight without division.
			if a.active.Load()*int64(b.weightOr1()) <= b.active.Load()*int64(a.weightOr1()) {
				return a
			}
			return b
		case aok:
			return a
		case bok:
			return b
		}
	}
	if h := firstAvailable(l.hosts); h != nil {
		return h
	}
	return first
}
