package upstream

import (
	"fmt"
	"math/rand/v2"
)

// loadBalancer picks one endpoint of a fixed host list. Implementations
// skip endpoints that are unhealthy or ejected; when none is available they
// fall back to their pick among all hosts (panic mode, as Envoy's panic
// threshold at 0%), so a cluster whose every endpoint failed health checks
// still gets traffic instead of failing every request. pick must not
// allocate: it runs on every try.
type loadBalancer interface {
	pick(hashKey string) *endpoint
}

// lbFactory builds a balancer over a non-empty host list.
type lbFactory func(hosts []*endpoint) loadBalancer

func lbFactoryFor(name string) (lbFactory, error) {
	switch name {
	case "", "round_robin":
		return newRoundRobin, nil
	case "least_request":
		return newLeastRequest, nil
	case "random":
		return newRandom, nil
	case "ring_hash":
		return newRingHash, nil
	}
	return nil, fmt.Errorf("unknown lb %q (want round_robin, least_request, random or ring_hash)", name)
}

// firstAvailable scans hosts from a random start; nil when none is
// available.
func firstAvailable(hosts []*endpoint) *endpoint {
	n := len(hosts)
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		if h := hosts[(start+i)%n]; h.available() {
			return h
		}
	}
	return nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
