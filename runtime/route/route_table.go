package route

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Table is the routes of one listener in one config snapshot, indexed by
// host. Each index entry is the full, config-ordered candidate list for
// that host, computed when the table is built, so Match does one or a few
// map lookups and then walks a short slice, allocating nothing for
// routes without query conditions.
type Table struct {
	routes []*Route
	// exact maps a lower-case host (no port) to its candidates: routes
	// naming it, routes with a wildcard covering it, and host-less routes.
	exact map[string]*candidates
	// wild maps a wildcard's suffix (".example.com" for "*.example.com")
	// to its candidates: routes with any wildcard covering that suffix,
	// and host-less routes.
	wild map[string]*candidates
	// any holds the routes without hosts (or with "*"), for other hosts.
	any *candidates
	// withPort holds hosts configured with a port ("example.com:8080"),
	// matched against the whole authority before the port is stripped.
	withPort map[string]*candidates
}

// candidates is one host's routes in config order, the first that matches
// wins. A long list is also kept cut by the path's second byte (the one
// after the leading "/"): bySecond[c] holds, in config order, the routes
// whose literal path (path, path_prefix, or path_regex's literal prefix)
// could start "/c", those with a literal of a byte or none among them;
// bySecond[short] those that could match a path of under two bytes. A
// route left out of a part can never match a path it is used for, so the
// part's first match is the list's; Match then walks the routes that
// could match rather than all of them (a table of many path_prefix
// routes, each refused by a comparison, showed in profiles).
type candidates struct {
	all []*Route
	// always is all[0] when it has no condition: then it is every
	// request's first match (it is in every part too, first), and Match
	// need not read the request at all.
	always *Route
	// bySecond indexes parts (nil for a short list).
	bySecond *[short + 1]uint16
	parts    [][]*Route
}

// short is bySecond's entry for paths of under two bytes.
const short = 256

// minCut is the length from which a list is cut by the second byte: a
// shorter one is walked faster than it is indexed.
const minCut = 8

func newCandidates(all []*Route) *candidates {
	c := &candidates{all: all}
	if len(all) > 0 && all[0].unconditional() {
		c.always = all[0]
	}
	if len(all) < minCut {
		return c
	}
	c.bySecond = new([short + 1]uint16)
	seen := map[string]uint16{}
	for k := 0; k <= short; k++ {
		var part []*Route
		var key []byte
		for i, rt := range all {
			if lit := rt.pathLiteral(); len(lit) < 2 || k != short && lit[1] == byte(k) {
				part = append(part, rt)
				key = fmt.Appendf(key, "%d,", i)
			}
		}
		id, ok := seen[string(key)]
		if !ok {
			id = uint16(len(c.parts))
			seen[string(key)] = id
			c.parts = append(c.parts, part)
		}
		c.bySecond[k] = id
	}
	return c
}

// first is the first route of c that matches r, or nil.
func (c *candidates) first(r *request) *Route {
	routes := c.all
	if c.bySecond != nil {
		k := short
		if len(r.path) >= 2 {
			k = int(r.path[1])
		}
		routes = c.parts[c.bySecond[k]]
	}
	for _, rt := range routes {
		if rt.matches(r) {
			return rt
		}
	}
	return nil
}

// NewTable builds the table for a listener from cfg. routeNames is the
// listener's Routes: nil means every route written in the file (routes a
// mode preset generated belong only to the listeners that name them), a
// non-nil list exactly those routes, kept in config order.
func NewTable(cfg *config.Config, routeNames []string) (*Table, error) {
	return NewTableWith(cfg, routeNames, nil)
}

// NewTableWith is NewTable with derive run once on every route as it is
// built: what it returns becomes the route's Derived, so that what a
// caller works out from a route (the proxy's retry policy, filter chain,
// stats handles and mirror) travels with the route that Match returns,
// with no lookup per request. An error from derive fails the table.
func NewTableWith(cfg *config.Config, routeNames []string, derive func(*Route) (any, error)) (*Table, error) {
	want := map[string]bool{}
	for _, n := range routeNames {
		want[n] = true
	}
	t := &Table{exact: map[string]*candidates{}, wild: map[string]*candidates{}}
	found := map[string]bool{}
	for i, cr := range cfg.Routes {
		if routeNames == nil && cr.Generated || routeNames != nil && !want[cr.Name] {
			continue
		}
		found[cr.Name] = true
		rt, err := newRoute(i, cr)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", cr.Name, err)
		}
		if derive != nil {
			if rt.Derived, err = derive(rt); err != nil {
				return nil, fmt.Errorf("route %q: %w", cr.Name, err)
			}
		}
		t.routes = append(t.routes, rt)
	}
	for _, n := range routeNames {
		if !found[n] {
			return nil, fmt.Errorf("unknown route %q", n)
		}
	}
	t.index()
	return t, nil
}

// index fills the host maps. A route lands in an entry's list when its
// hosts could match any host that entry covers; lists keep config order,
// so first match wins across exact, wildcard and host-less routes alike.
func (t *Table) index() {
	var exacts, wilds, ported []string
	for _, rt := range t.routes {
		for _, h := range rt.Match.Hosts {
			h = normHost(h)
			switch {
			case h == "*":
			case strings.HasPrefix(h, "*."):
				wilds = append(wilds, h[1:])
			case hasPort(h):
				// Not a bare IPv6 literal ("[::1]"), whose colons are
				// its own: that is an exact host.
				ported = append(ported, h)
			default:
				exacts = append(exacts, h)
			}
		}
	}
	var any []*Route
	for _, rt := range t.routes {
		if rt.anyHost() {
			any = append(any, rt)
		}
	}
	t.any = newCandidates(any)
	for _, h := range exacts {
		t.exact[h] = t.candidates(func(rt *Route) bool { return rt.coversHost(h) })
	}
	for _, s := range wilds {
		// A host under s is under every wildcard suffix of s too.
		t.wild[s] = t.candidates(func(rt *Route) bool { return rt.coversWildcard(s) })
	}
	if len(ported) > 0 {
		t.withPort = map[string]*candidates{}
		for _, h := range ported {
			host, _ := splitPort(h)
			t.withPort[h] = t.candidates(func(rt *Route) bool {
				return slices.ContainsFunc(rt.Match.Hosts, func(x string) bool { return normHost(x) == h }) || rt.coversHost(host)
			})
		}
	}
}

func (t *Table) candidates(covers func(*Route) bool) *candidates {
	var out []*Route
	for _, rt := range t.routes {
		if rt.anyHost() || covers(rt) {
			out = append(out, rt)
		}
	}
	return newCandidates(out)
}

func (rt *Route) anyHost() bool {
	return len(rt.Match.Hosts) == 0 || slices.Contains(rt.Match.Hosts, "*")
}

// coversHost reports whether one of rt's hosts matches the port-less host h.
func (rt *Route) coversHost(h string) bool {
	for _, x := range rt.Match.Hosts {
		x = normHost(x)
		if x == h || strings.HasPrefix(x, "*.") && len(h) > len(x)-1 && strings.HasSuffix(h, x[1:]) {
			return true
		}
	}
	return false
}

// coversWildcard reports whether one of rt's wildcards matches every host
// under the suffix s (".b.example.com" is covered by "*.example.com").
func (rt *Route) coversWildcard(s string) bool {
	for _, x := range rt.Match.Hosts {
		x = normHost(x)
		if strings.HasPrefix(x, "*.") && strings.HasSuffix(s, x[1:]) {
			return true
		}
	}
	return false
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// Routes returns the table's routes in config order. The slice is shared;
// do not modify it.
func (t *Table) Routes() []*Route { return t.routes }

// Match returns the first route, in config order, whose conditions all
// hold for the request h, or nil. The host is :authority (else the Host
// field), compared without its port and case-insensitively. It allocates
// nothing unless the host has upper case, the path escapes, or a route
// has query conditions.
func (t *Table) Match(h *stream.HeaderMap) *Route {
	if len(t.exact) == 0 && len(t.wild) == 0 && t.withPort == nil {
		// No route names a host: every request's candidates are the
		// host-less routes, and when the first of them has no condition
		// it is the match, whatever the request (a catch-all route).
		if rt := t.any.always; rt != nil {
			return rt
		}
		r := newRequest(h)
		return t.any.first(&r)
	}
	r := newRequest(h)
	authority := r.authority()
	for _, c := range authority {
		if 'A' <= c && c <= 'Z' {
			authority = bytes.ToLower(authority)
			break
		}
	}
	if t.withPort != nil {
		if c, ok := t.withPort[string(authority)]; ok {
			return c.first(&r)
		}
	}
	host := authority
	// A colon with no ']' after it starts the port ("[::1]" has none):
	// only the bytes after the colon are looked at for the bracket, not
	// the whole authority again.
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		host = host[:i]
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if c, ok := t.exact[string(host)]; ok {
		return c.first(&r)
	}
	if len(t.wild) > 0 {
		// The longest wildcard suffix has the fullest candidate list.
		for i := 0; i < len(host); i++ {
			if host[i] == '.' {
				if c, ok := t.wild[string(host[i:])]; ok && i > 0 {
					return c.first(&r)
				}
			}
		}
	}
	return t.any.first(&r)
}

// hasPort says whether a configured host names a port.
func hasPort(h string) bool {
	_, port := splitPort(h)
	return port != ""
}

// splitPort cuts ":port" off a host, leaving IPv6 literals ("[::1]:80")
// in brackets.
func splitPort(hostport string) (host, port string) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.LastIndexByte(hostport, ']') > i {
		return hostport, ""
	}
	return hostport[:i], hostport[i+1:]
}
