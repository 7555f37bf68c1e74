package proxy

import (
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// twoListenersConfig is a route of two clusters (one named twice) on
// two listeners.
const twoListenersConfig = `
[[listeners]]
name = "a"
address = "127.0.0.1:0"
[[listeners]]
name = "b"
address = "127.0.0.1:0"
[[routes]]
name = "split"
match = { path_prefix = "/" }
backends = [ { cluster = "one", weight = 1 }, { cluster = "two", weight = 1 }, { cluster = "one", weight = 1 } ]
[[clusters]]
name = "one"
endpoints = ["127.0.0.1:1"]
[[clusters]]
name = "two"
endpoints = ["127.0.0.1:2"]
`

// TestRouteClusters: the cluster forward takes for a backend (looked up
// once per route when the snapshot is built) is the one the backend
// names, for each backend of a route with several, on every listener;
// a backend that is not the route's own is looked up by name.
func TestRouteClusters(t *testing.T) {
	snap, up := newTestSnapshot(t, twoListenersConfig, nil)
	var h stream.HeaderMap
	h.Add(stream.Method, "GET")
	h.Add(stream.Path, "/x")
	h.Add(stream.Authority, "h")
	for _, l := range []string{"a", "b"} {
		rt := snap.listeners[l].table.Match(&h)
		if rt == nil {
			t.Fatalf("listener %s: no route", l)
		}
		ri := routeInfoOf(rt)
		if len(ri.clusters) != len(rt.Backends) {
			t.Fatalf("listener %s: %d clusters for %d backends", l, len(ri.clusters), len(rt.Backends))
		}
		for i := range rt.Backends {
			b := &rt.Backends[i]
			want := up.Cluster(b.Cluster)
			if want == nil || ri.clusters[i] != want || ri.cluster(rt, b, up) != want {
				t.Errorf("listener %s backend %d (%s): cluster %p, want %p", l, i, b.Cluster, ri.cluster(rt, b, up), want)
			}
		}
		other := config.Backend{Cluster: "two"}
		if got := ri.cluster(rt, &other, up); got != up.Cluster("two") {
			t.Errorf("listener %s: a backend not the route's: %p", l, got)
		}
	}
}

// TestRoutesOfFollowsSnapshot: a connection manager's routes are its
// listener's in the snapshot it is given, however often the snapshot
// changes back and forth (routesOf keeps the last lookup).
func TestRoutesOfFollowsSnapshot(t *testing.T) {
	s1, _ := newTestSnapshot(t, twoListenersConfig, nil)
	s2, _ := newTestSnapshot(t, twoListenersConfig, nil)
	var ptr atomic.Pointer[Snapshot]
	ptr.Store(s1)
	cm := NewConnectionManager("a", &ptr, new(atomic.Uint64), zap.NewNop(), zap.NewNop())
	for i, s := range []*Snapshot{s1, s1, s2, s2, s1, s2} {
		if got, want := cm.routesOf(s), s.listeners["a"]; got != want || want == nil {
			t.Fatalf("step %d: routes %p, want the snapshot's %p", i, got, want)
		}
	}
}
