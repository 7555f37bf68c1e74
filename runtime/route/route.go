// Package route turns a config snapshot's routes into a Table that picks
// the Route for a request: host (exact or "*." wildcard), path (exact,
// prefix or regex), methods, headers and query parameters. A Table is
// built once per config snapshot and is read-only afterwards, so any
// number of goroutines may call Match at once.
package route

import (
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Route is one matched route: the config entry (embedded, so rt.Name,
// rt.Timeout, rt.Plugins, rt.Mirror, rt.Metadata, rt.Backends read as in
// the TOML) with its retry policy resolved and its matchers compiled.
// Callers must not modify it: it is shared by every request of the snapshot.
type Route struct {
	config.Route

	// Derived is what the table's builder derived from the route once,
	// when it was built (NewTableWith); nil from NewTable.
	Derived any

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
// and is compared in its decoded form, so a kept "/a%2Fb" is seen as
// "/a/b"; path_prefix is a plain string prefix, as Envoy's prefix is
// ("/api" matches "/apis" too: write "/api/" to mean the directory).
func (rt *Route) matches(r *request) bool {
	path := r.path
	switch {
	case rt.pathExact != "" && string(path) != rt.pathExact:
		return false
	case rt.pathPrefix != "" && !hasPrefix(path, rt.pathPrefix):
		return false
	case rt.pathRegex != nil && (!hasPrefix(path, rt.regexLit) || !rt.pathRegex.Match(path)):
		return false
	}
	if len(rt.methods) > 0 && !rt.allowsMethod(r.method) {
		return false
	}
	for i := range rt.headers {
		if !rt.headers[i].match(r.h) {
			return false
		}
	}
	if len(rt.query) > 0 && !matchQuery(rt.query, string(r.query)) {
		return false
	}
	return true
}

// unconditional says rt has no condition but its hosts: matches holds
// for every request.
func (rt *Route) unconditional() bool {
	return rt.pathExact == "" && rt.pathPrefix == "" && rt.pathRegex == nil &&
		len(rt.methods) == 0 && len(rt.headers) == 0 && len(rt.query) == 0
}

// pathLiteral is what a path must start with for rt to match it: the
// exact path, the prefix, or the regex's literal prefix ("" for none).
func (rt *Route) pathLiteral() string {
	switch {
	case rt.pathExact != "":
		return rt.pathExact
	case rt.pathPrefix != "":
		return rt.pathPrefix
	}
	return rt.regexLit
}

func (rt *Route) allowsMethod(method []byte) bool {
	for _, m := range rt.methods {
		if m == string(method) {
			return true
		}
	}
	return false
}

// Rewrite applies the route's path and host rewrites to the request map h
// before it is forwarded: strip_prefix removes match.path_prefix (an empty
// result becomes "/", and a result not starting with "/" gets one, so
// "/api/" stripped from "/api/x" gives "/x"); prefix_rewrite replaces the
// prefix as Envoy's does; host_rewrite replaces :authority. The prefix is
// matched on the decoded path; the raw (escaped) path is rewritten
// alongside when the prefix appears in it unescaped, else the new path is
// escaped afresh. The query is kept.
func (rt *Route) Rewrite(h *stream.HeaderMap) {
	if rt.HostRewrite != "" {
		h.Set(stream.Authority, rt.HostRewrite)
	}
	prefix := rt.Match.PathPrefix
	if prefix == "" || (!rt.StripPrefix && rt.PrefixRewrite == "") {
		return
	}
	target, _ := h.GetPseudo(stream.PseudoPath)
	u, err := url.ParseRequestURI(string(target))
	if err != nil || !strings.HasPrefix(u.Path, prefix) {
		return
	}
	escaped := u.EscapedPath()
	repl := rt.PrefixRewrite
	u.Path = joinRewrite(repl, u.Path[len(prefix):], rt.StripPrefix)
	if u.RawPath != "" {
		if strings.HasPrefix(u.RawPath, prefix) {
			u.RawPath = joinRewrite(repl, u.RawPath[len(prefix):], rt.StripPrefix)
		} else {
			u.RawPath = ""
		}
	}
	if u.EscapedPath() != escaped {
		h.Set(stream.Path, u.RequestURI())
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
