// Package route turns a config snapshot's routes into a Table that picks
// the Route for a request: host (exact or "*." wildcard), path (exact,
// prefix or regex), methods, headers and query parameters. A Table is
// built once per config snapshot and is read-only afterwards, so any
// number of goroutines may call Match at once.
package route

import (
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// Route is one matched route: the config entry (embedded, so rt.Name,
// rt.Timeout, rt.Plugins, rt.Mirror, rt.Metadata, rt.Backends read as in
// the TOML) with its retry policy resolved and its matchers compiled.
// Callers must not modify it: it is shared by every request of the snapshot.
type Route struct {
	config.Route

	// index is the position in the config, for first-match-wins order.
	index int

	pathExact  string
	pathPrefix string
	pathRegex  *regexp.Regexp
	// regexLit is the regex's literal prefix, checked first: a failed
	// HasPrefix costs a few ns, a failed regex run a few hundred.
	regexLit string
	methods  []string
	headers  []headerMatcher
	query    []queryMatcher

	// weighted are the indices of Backends without header conditions, the
	// ones a weighted pick chooses among; total is the sum of their weights.
	weighted  []int
	total     uint64
	byHeaders []backendByHeaders
}

type backendByHeaders struct {
	index   int
	headers []headerMatcher
}

func newRoute(index int, cr config.Route) (*Route, error) {
	rt := &Route{Route: cr, index: index}
	if rt.Retry == nil {
		// Istio's default when a route names no policy.
		rt.Retry = config.DefaultRetry()
	}
	m := cr.Match
	rt.pathExact = m.Path
	rt.pathPrefix = m.PathPrefix
	if m.PathRegex != "" {
		re, err := compileFull(m.PathRegex)
		if err != nil {
			return nil, err
		}
		rt.pathRegex = re
		rt.regexLit, _ = re.LiteralPrefix()
	}
	rt.methods = slices.Clone(m.Methods)
	var err error
	if rt.headers, err = compileHeaders(m.Headers); err != nil {
		return nil, err
	}
	if rt.query, err = compileQuery(m.Query); err != nil {
		return nil, err
	}
	for i, b := range cr.Backends {
		if len(b.Headers) > 0 {
			hs, err := compileHeaders(b.Headers)
			if err != nil {
				return nil, err
			}
			rt.byHeaders = append(rt.byHeaders, backendByHeaders{index: i, headers: hs})
			continue
		}
		rt.weighted = append(rt.weighted, i)
		rt.total += uint64(max(b.Weight, 0))
	}
	return rt, nil
}

// compileFull compiles a regex that must match the whole input, as Envoy's
// safe_regex and Istio's regex matchers do; "/api/.*" does not match
// "/x/api/y".
func compileFull(expr string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + expr + `)$`)
}

// matches reports whether r meets every condition except the host, which
// the Table has already checked. The path was normalized when the request
// arrived (the listener's path_normalization: "//a/./b/../c" is "/a/c"),
// and is compared in its decoded form (r.URL.Path), so a kept "/a%2Fb" is
// seen as "/a/b"; path_prefix is a plain
// string prefix, as Envoy's prefix is ("/api" matches "/apis" too: write
// "/api/" to mean the directory).
func (rt *Route) matches(r *http.Request) bool {
	path := r.URL.Path
	switch {
	case rt.pathExact != "" && path != rt.pathExact:
		return false
	case rt.pathPrefix != "" && !strings.HasPrefix(path, rt.pathPrefix):
		return false
	case rt.pathRegex != nil && (!strings.HasPrefix(path, rt.regexLit) || !rt.pathRegex.MatchString(path)):
		return false
	}
	if len(rt.methods) > 0 && !slices.Contains(rt.methods, r.Method) {
		return false
	}
	for i := range rt.headers {
		if !rt.headers[i].match(r.Header) {
			return false
		}
	}
	if len(rt.query) > 0 && !matchQuery(rt.query, r.URL.RawQuery) {
		return false
	}
	return true
}

// Rewrite applies the route's path and host rewrites to r before it is
// forwarded: strip_prefix removes match.path_prefix (an empty result
// becomes "/", and a result not starting with "/" gets one, so "/api/"
// stripped from "/api/x" gives "/x"); prefix_rewrite replaces the prefix as
// Envoy's does; host_rewrite replaces r.Host. The raw (escaped) path is
// rewritten alongside when the prefix appears in it unescaped, else
// dropped so that Go re-escapes the new path.
func (rt *Route) Rewrite(r *http.Request) {
	if rt.HostRewrite != "" {
		r.Host = rt.HostRewrite
	}
	prefix := rt.Match.PathPrefix
	if prefix == "" || (!rt.StripPrefix && rt.PrefixRewrite == "") {
		return
	}
	repl := rt.PrefixRewrite
	u := r.URL
	if !strings.HasPrefix(u.Path, prefix) {
		return
	}
	u.Path = joinRewrite(repl, u.Path[len(prefix):], rt.StripPrefix)
	if u.RawPath != "" {
		if strings.HasPrefix(u.RawPath, prefix) {
			u.RawPath = joinRewrite(repl, u.RawPath[len(prefix):], rt.StripPrefix)
		} else {
			u.RawPath = ""
		}
	}
}

func joinRewrite(repl, rest string, strip bool) string {
	if strip {
		switch {
		case rest == "":
			return "/"
		case rest[0] != '/':
			return "/" + rest
		}
		return rest
	}
	return repl + rest
}
