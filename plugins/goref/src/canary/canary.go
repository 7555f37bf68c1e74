// Package canary is the canary plugin: Istio VirtualService routing as a
// filter. It picks a subset for each request (by header or cookie match,
// else by weighted split, optionally sticky on a key) and tells the proxy's
// backend picker through the request header x-sluice-subset and the
// property sluice.subset.
package canary

import (
	"fmt"
	"hash/fnv"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Name is the plugin's root_id.
const Name = "canary"

// SubsetHeader and SubsetProperty carry the chosen subset to the backend
// picker. A client-sent SubsetHeader is always replaced or removed, so
// clients cannot steer requests past the rules.
const (
	SubsetHeader   = "x-sluice-subset"
	SubsetProperty = "sluice.subset"
)

// Destination is Istio's Destination (only subset matters to the filter;
// host is accepted for configurations copied from a VirtualService).
type Destination struct {
	Host   string `json:"host"`
	Subset string `json:"subset"`
}

// RouteDestination is one weighted target.
type RouteDestination struct {
	Destination *Destination `json:"destination"`
	// Subset is shorthand for destination.subset.
	Subset string `json:"subset"`
	Weight int    `json:"weight"`
}

// HTTPRoute is Istio's HTTPRoute: the first whose match holds decides.
type HTTPRoute struct {
	Name  string               `json:"name"`
	Match []common.HeaderMatch `json:"match"`
	Route []RouteDestination   `json:"route"`
}

// Sticky keys the weighted pick on a header or cookie, so a user stays on
// one subset.
type Sticky struct {
	Header string `json:"header"`
	Cookie string `json:"cookie"`
}

// Config is the plugin's configuration.
type Config struct {
	HTTP   []HTTPRoute `json:"http"`
	Sticky *Sticky     `json:"sticky"`
}

type target struct {
	subset string
	weight int
}

type route struct {
	match   []common.HeaderMatch
	targets []target
	total   int
}

// Router is a validated configuration.
type Router struct {
	routes []route
	sticky Sticky
}

// Parse validates a configuration.
func Parse(data []byte) (*Router, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	r := &Router{}
	if c.Sticky != nil {
		if (c.Sticky.Header == "") == (c.Sticky.Cookie == "") {
			return nil, fmt.Errorf("config: sticky: set exactly one of header, cookie")
		}
		r.sticky = *c.Sticky
	}
	for i, h := range c.HTTP {
		where := fmt.Sprintf("config: http[%d]", i)
		rt := route{match: h.Match}
		for j := range rt.match {
			if err := rt.match[j].Compile(fmt.Sprintf("%s.match[%d]", where, j)); err != nil {
				return nil, err
			}
		}
		if len(h.Route) == 0 {
			return nil, fmt.Errorf("%s.route: at least one destination is required", where)
		}
		for j, d := range h.Route {
			subset := d.Subset
			if d.Destination != nil {
				if subset != "" && d.Destination.Subset != "" && subset != d.Destination.Subset {
					return nil, fmt.Errorf("%s.route[%d]: subset and destination.subset differ", where, j)
				}
				if subset == "" {
					subset = d.Destination.Subset
				}
			}
			if subset == "" {
				return nil, fmt.Errorf("%s.route[%d]: subset is required", where, j)
			}
			w := d.Weight
			if w < 0 {
				return nil, fmt.Errorf("%s.route[%d]: weight must not be negative", where, j)
			}
			if w == 0 && len(h.Route) == 1 {
				w = 100 // Istio: a single destination takes all traffic
			}
			rt.targets = append(rt.targets, target{subset, w})
			rt.total += w
		}
		if rt.total == 0 {
			return nil, fmt.Errorf("%s.route: weights add up to 0", where)
		}
		r.routes = append(r.routes, rt)
	}
	return r, nil
}

// Pick returns the subset for a request, or "" when no route applies.
// roll is a uniform random number in [0, 1), used when the request has no
// sticky key.
func (r *Router) Pick(headers [][2]string, roll float64) string {
	for _, rt := range r.routes {
		if len(rt.match) > 0 {
			matched := false
			for i := range rt.match {
				if rt.match[i].Match(headers) {
					matched = true
					break
				}
			}
			if !matched {
				continue
			}
		}
		if len(rt.targets) == 1 {
			return rt.targets[0].subset
		}
		n := int(roll * float64(rt.total))
		if key, ok := r.stickyKey(headers); ok {
			h := fnv.New32a()
			h.Write([]byte(key))
			n = int(h.Sum32() % uint32(rt.total))
		}
		for _, t := range rt.targets {
			if n < t.weight {
				return t.subset
			}
			n -= t.weight
		}
		return rt.targets[len(rt.targets)-1].subset
	}
	return ""
}

func (r *Router) stickyKey(headers [][2]string) (string, bool) {
	switch {
	case r.sticky.Header != "":
		v, ok := common.Header(headers, r.sticky.Header)
		return v, ok && v != ""
	case r.sticky.Cookie != "":
		ch, _ := common.Header(headers, "cookie")
		v, ok := common.Cookie(ch, r.sticky.Cookie)
		return v, ok && v != ""
	}
	return "", false
}
