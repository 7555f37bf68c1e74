package upstream

import (
	"fmt"
	"math"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
)

func testHosts(weights ...int) []*endpoint {
	hs := make([]*endpoint, len(weights))
	for i, w := range weights {
		hs[i] = &endpoint{addr: fmt.Sprintf("10.0.0.%d:80", i+1), weight: w}
	}
	return hs
}

func countPicks(lb loadBalancer, n int, key func(i int) string) map[string]int {
	got := map[string]int{}
	for i := 0; i < n; i++ {
		k := ""
		if key != nil {
			k = key(i)
		}
		got[lb.pick(k).addr]++
	}
	return got
}

// TestBalancerDistribution checks each balancer's share per endpoint
// against its weight: exact for round robin, within a tolerance for the
// randomized ones.
func TestBalancerDistribution(t *testing.T) {
	const n = 24000 // divisible by every weight sum below
	tests := []struct {
		lb      string
		weights []int
		tol     float64 // allowed relative error of each share
	}{
		{"round_robin", []int{0, 0, 0}, 0},
		{"round_robin", []int{1, 3}, 0},
		{"round_robin", []int{2, 4, 6}, 0},
		{"random", []int{0, 0, 0, 0}, 0.1},
		{"random", []int{1, 3}, 0.1},
		{"least_request", []int{0, 0, 0}, 0.1},
		{"ring_hash", []int{0, 0, 0}, 0.25},
		{"ring_hash", []int{1, 3}, 0.25},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%v", tt.lb, tt.weights), func(t *testing.T) {
			f, err := lbFactoryFor(tt.lb)
			if err != nil {
				t.Fatal(err)
			}
			hosts := testHosts(tt.weights...)
			got := countPicks(f(hosts), n, func(i int) string { return fmt.Sprintf("user-%d", i) })
			total := 0
			for _, h := range hosts {
				total += h.weightOr1()
			}
			for _, h := range hosts {
				want := float64(n) * float64(h.weightOr1()) / float64(total)
				if d := math.Abs(float64(got[h.addr])-want) / want; d > tt.tol+1e-9 {
					t.Errorf("%s got %d picks, want %.0f (±%.0f%%)", h.addr, got[h.addr], want, tt.tol*100)
				}
			}
		})
	}
}

func TestRoundRobinInterleavesWeights(t *testing.T) {
	hosts := testHosts(1, 3)
	lb := newRoundRobin(hosts)
	// Smooth weighted round robin never sends the light endpoint twice in
	// a row, nor the heavy one more than three times.
	prev, run := "", 0
	for i := 0; i < 40; i++ {
		a := lb.pick("").addr
		if a == prev {
			run++
		} else {
			run = 1
		}
		prev = a
		if a == hosts[0].addr && run > 1 || run > 3 {
			t.Fatalf("pick %d: %s %d times in a row", i, a, run)
		}
	}
}

func TestBalancersSkipUnavailable(t *testing.T) {
	for _, name := range []string{"round_robin", "random", "least_request", "ring_hash"} {
		t.Run(name, func(t *testing.T) {
			f, _ := lbFactoryFor(name)
			hosts := testHosts(0, 0, 0, 0)
			hosts[0].ejected.Store(true)
			hosts[2].unhealthy.Store(true)
			lb := f(hosts)
			got := countPicks(lb, 2000, func(i int) string { return fmt.Sprint(i) })
			if got[hosts[0].addr] != 0 || got[hosts[2].addr] != 0 {
				t.Errorf("picked unavailable endpoints: %v", got)
			}
			if got[hosts[1].addr] == 0 || got[hosts[3].addr] == 0 {
				t.Errorf("available endpoints starved: %v", got)
			}
			// Panic mode: nothing available, traffic goes to all.
			for _, h := range hosts {
				h.ejected.Store(true)
			}
			got = countPicks(lb, 2000, func(i int) string { return fmt.Sprint(i) })
			if len(got) != len(hosts) {
				t.Errorf("panic mode used %d of %d endpoints: %v", len(got), len(hosts), got)
			}
		})
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	hosts := testHosts(0, 0, 0)
	hosts[0].active.Store(50)
	hosts[1].active.Store(50)
	got := countPicks(newLeastRequest(hosts), 3000, nil)
	// Host 2 wins every pair it is drawn in: 2 of 3 pairs.
	if share := float64(got[hosts[2].addr]) / 3000; share < 0.6 {
		t.Errorf("idle endpoint got %.2f of picks, want about 0.67: %v", share, got)
	}
}

func TestRingHashStableUnderEndpointChanges(t *testing.T) {
	hosts := testHosts(0, 0, 0, 0, 0)
	before := newRingHash(hosts)
	// Same key, same endpoint, every time.
	for i := 0; i < 100; i++ {
		if a, b := before.pick("alice").addr, before.pick("alice").addr; a != b {
			t.Fatalf("key moved between picks: %s, %s", a, b)
		}
	}
	removed := hosts[2]
	after := newRingHash(append(append([]*endpoint{}, hosts[:2]...), hosts[3:]...))
	added := newRingHash(append(append([]*endpoint{}, hosts...), &endpoint{addr: "10.0.0.99:80"}))
	moved, movedAdd := 0, 0
	const keys = 5000
	for i := 0; i < keys; i++ {
		k := fmt.Sprintf("session-%d", i)
		b := before.pick(k)
		if a := after.pick(k); b != removed && a != b {
			moved++
		}
		if a := added.pick(k); a != b && a.addr != "10.0.0.99:80" {
			movedAdd++
		}
	}
	if moved != 0 {
		t.Errorf("removing one endpoint moved %d keys that were not on it", moved)
	}
	if movedAdd != 0 {
		t.Errorf("adding one endpoint moved %d keys between the old endpoints", movedAdd)
	}
	// Order of hosts must not matter.
	rev := []*endpoint{hosts[4], hosts[3], hosts[2], hosts[1], hosts[0]}
	r2 := newRingHash(rev)
	for i := 0; i < 1000; i++ {
		k := fmt.Sprint(i)
		if before.pick(k) != r2.pick(k) {
			t.Fatalf("key %q maps differently when hosts are reordered", k)
		}
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"round_robin", "random", "least_request", "ring_hash"} {
		f, _ := lbFactoryFor(name)
		lb := f(testHosts(1, 2, 3))
		if n := testing.AllocsPerRun(1000, func() { lb.pick("some-key") }); n != 0 {
			t.Errorf("%s: %v allocations per pick", name, n)
		}
	}
	hs := newHostSet(testHosts(0, 0), newRoundRobin)
	sel := map[string]string{}
	hs.hosts[0].labels = map[string]string{"v": "1"}
	sel["v"] = "1"
	hs.balancerFor(sel) // build the subset once
	if n := testing.AllocsPerRun(1000, func() { hs.balancerFor(sel).pick("") }); n != 0 {
		t.Errorf("subset pick: %v allocations", n)
	}
}

// TestClusterBalancesOverSockets drives real backends through each
// balancer and checks every one serves.
func TestClusterBalancesOverSockets(t *testing.T) {
	bs := []backend{startHTTP(t, "a", nil, false), startHTTP(t, "b", nil, false), startHTTP(t, "c", nil, false)}
	for _, lb := range []string{"round_robin", "least_request", "random", "ring_hash"} {
		t.Run(lb, func(t *testing.T) {
			m, _ := newTestManager(t, nil, config.Cluster{Name: "c", LB: lb, Endpoints: addrs(bs...)})
			c := m.Cluster("c")
			got := map[string]int{}
			for i := 0; i < 60; i++ {
				got[mustGet(t, c, Pick{HashKey: fmt.Sprint("k", i)})]++
			}
			if len(got) != 3 {
				t.Errorf("backends used: %v", got)
			}
			if lb == "round_robin" && (got["a"] != 20 || got["b"] != 20 || got["c"] != 20) {
				t.Errorf("round robin uneven: %v", got)
			}
			if lb == "ring_hash" {
				first := mustGet(t, c, Pick{HashKey: "sticky"})
				for i := 0; i < 10; i++ {
					if b := mustGet(t, c, Pick{HashKey: "sticky"}); b != first {
						t.Fatalf("ring_hash moved key: %s then %s", first, b)
					}
				}
			}
		})
	}
}

func TestSubsets(t *testing.T) {
	v1a, v1b, v2 := startHTTP(t, "v1a", nil, false), startHTTP(t, "v1b", nil, false), startHTTP(t, "v2", nil, false)
	m, _ := newTestManager(t, nil, config.Cluster{Name: "c", LabeledEndpoints: []config.Endpoint{
		{Address: v1a.addr, Labels: map[string]string{"version": "v1", "zone": "a"}},
		{Address: v1b.addr, Labels: map[string]string{"version": "v1", "zone": "b"}},
		{Address: v2.addr, Labels: map[string]string{"version": "v2", "zone": "a"}},
	}})
	c := m.Cluster("c")
	tests := []struct {
		sel  map[string]string
		want []string
	}{
		{nil, []string{"v1a", "v1b", "v2"}},
		{map[string]string{"version": "v1"}, []string{"v1a", "v1b"}},
		{map[string]string{"version": "v2"}, []string{"v2"}},
		{map[string]string{"version": "v1", "zone": "b"}, []string{"v1b"}},
		{map[string]string{"zone": "a"}, []string{"v1a", "v2"}},
		{map[string]string{"version": "v3"}, nil},
	}
	for _, tt := range tests {
		got := map[string]bool{}
		var lastErr error
		for i := 0; i < 12; i++ {
			body, err := get(t, c, Pick{Subset: tt.sel})
			if err != nil {
				lastErr = err
				continue
			}
			got[body] = true
		}
		if tt.want == nil {
			if Classify(lastErr) != NoHealthyUpstream || len(got) != 0 {
				t.Errorf("subset %v: got %v, err %v; want no_healthy_upstream", tt.sel, got, lastErr)
			}
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("subset %v reached %v, want %v", tt.sel, got, tt.want)
		}
		for _, w := range tt.want {
			if !got[w] {
				t.Errorf("subset %v never reached %s (got %v)", tt.sel, w, got)
			}
		}
	}
}
