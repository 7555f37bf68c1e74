package proxy

import (
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestRouteClusters: the cluster forward takes for a backend (looked up
// once per route when the snapshot is built) is the one the backend
// names, for each backend of a route with several, on every listener;
// a backend that is not the route's own is looked up by name.
func TestRouteClusters(t *testing.T) {
	snap, up := newTestSnapshot(t, `
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
`, nil)
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
