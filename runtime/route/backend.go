package route

import (
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// SubsetLabel is the endpoint label a canary subset names: a subset
// "v2" (the stream property SubsetProperty, set by the canary plugin)
// selects the backends whose Subset["version"] is "v2".
const SubsetLabel = "version"

// SubsetProperty is the stream property (proxy-wasm set_property, kept in
// the stream's filter state) through which a filter names the subset for
// PickBackend. Only filters set properties, so a client cannot steer a
// request to a subset: the request header x-sluice-subset the canary
// plugin also sets is informational, and a client's copy is removed
// before filters run.
const SubsetProperty = "sluice.subset"

// PickBackend chooses the backend for one request, after the request
// filters ran so that a filter can steer it. The rule, in order:
//
//  1. the first backend with Headers whose every header condition matches h;
//  2. when subset is not "", a weighted choice among the backends without
//     Headers whose Subset["version"] equals subset (the first of them if
//     all their weights are zero);
//  3. a weighted choice among all backends without Headers.
//
// rnd is a uniformly random number from the caller, so the picker holds
// no random state of its own. The result points into the shared route and
// must not be modified; nil only when the route has no backend left to
// choose (a route made only of header-matched backends, none matching).
func (rt *Route) PickBackend(h *stream.HeaderMap, subset string, rnd uint64) *config.Backend {
	if len(rt.weighted) == 1 && len(rt.byHeaders) == 0 && subset == "" {
		// One backend, the choice whatever its weight (the rule's step 3
		// with one backend to choose from): no division.
		return &rt.Backends[rt.weighted[0]]
	}
	for i := range rt.byHeaders {
		bh := &rt.byHeaders[i]
		ok := true
		for j := range bh.headers {
			if !bh.headers[j].match(h) {
				ok = false
				break
			}
		}
		if ok {
			return &rt.Backends[bh.index]
		}
	}
	if subset != "" {
		var total uint64
		first := -1
		for _, i := range rt.weighted {
			if rt.Backends[i].Subset[SubsetLabel] == subset {
				total += uint64(max(rt.Backends[i].Weight, 0))
				if first < 0 {
					first = i
				}
			}
		}
		switch {
		case total > 0:
			return rt.pick(rnd%total, subset)
		case first >= 0:
			return &rt.Backends[first]
		}
	}
	if rt.total == 0 {
		if len(rt.weighted) == 0 {
			return nil
		}
		return &rt.Backends[rt.weighted[0]]
	}
	return rt.pick(rnd%rt.total, "")
}

// Draws reports whether PickBackend's choice can depend on its rnd: only
// among two or more weighted backends (with one, each step that draws
// chooses it, and header-matched backends draw nothing). A caller may
// pass 0 for a route that does not draw, without making a random number.
func (rt *Route) Draws() bool { return len(rt.weighted) > 1 }

// pick walks the weighted backends (only those of subset, when set) to
// the one whose weight range holds n.
func (rt *Route) pick(n uint64, subset string) *config.Backend {
	for _, i := range rt.weighted {
		b := &rt.Backends[i]
		if subset != "" && b.Subset[SubsetLabel] != subset {
			continue
		}
		w := uint64(max(b.Weight, 0))
		if n < w {
			return b
		}
		n -= w
	}
	return &rt.Backends[rt.weighted[len(rt.weighted)-1]]
}
