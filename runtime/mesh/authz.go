package mesh

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Authorization as Istio's AuthorizationPolicy, on a sidecar's inbound
// side. Each [[authorization]] entry is one policy with one rule:
//
//   - from: principals (SPIFFE IDs, with or without "spiffe://", as Istio
//     writes them) and namespaces of the mTLS peer; empty matches anyone,
//     including a plain-text peer in permissive mode.
//   - to: methods and paths (the path without its query, normalized at
//     the listener before any filter runs, as Istio's pathNormalization
//     does, and compared decoded: the path the app is sent).
//   - when: request headers (name, or Istio's "request.headers[name]"),
//     exact (with the patterns below), regex (whole value), present, absent.
//
// Every string takes Istio's patterns: exact, "prefix*", "*suffix", "*".
// Fields are ANDed, values within a field ORed. Evaluation is Istio's:
// CUSTOM policies first (their plugin runs when the rule matches and may
// deny), then DENY (any match denies), then ALLOW (when any ALLOW policy
// exists, one must match). A denied request gets 403 "RBAC: access
// denied" (PERMISSION_DENIED for gRPC).

// DeniedBody is Envoy's RBAC denial body.
const DeniedBody = "RBAC: access denied"

const grpcPermissionDenied = 7

// pattern is one Istio string match.
type pattern struct {
	kind byte // '=', 'p' prefix, 's' suffix, '*' any
	s    string
}

func compilePattern(p string) pattern {
	switch {
	case p == "*":
		return pattern{kind: '*'}
	case strings.HasSuffix(p, "*"):
		return pattern{kind: 'p', s: strings.TrimSuffix(p, "*")}
	case strings.HasPrefix(p, "*"):
		return pattern{kind: 's', s: strings.TrimPrefix(p, "*")}
	}
	return pattern{kind: '=', s: p}
}

func (p pattern) match(v string) bool {
	switch p.kind {
	case '*':
		return v != ""
	case 'p':
		return strings.HasPrefix(v, p.s)
	case 's':
		return strings.HasSuffix(v, p.s)
	}
	return v == p.s
}

func compilePatterns(ps []string) []pattern {
	out := make([]pattern, len(ps))
	for i, p := range ps {
		out[i] = compilePattern(p)
	}
	return out
}

// anyMatch is true for an empty list (the field is not constrained).
func anyMatch(ps []pattern, vs ...string) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		for _, v := range vs {
			if p.match(v) {
				return true
			}
		}
	}
	return false
}

type headerCond struct {
	name    string
	exact   *pattern
	re      *regexp.Regexp
	present bool
	absent  bool
}

func (c *headerCond) match(h *stream.HeaderMap) bool {
	switch {
	case c.absent:
		return !h.Has(c.name)
	case c.present:
		return h.Has(c.name)
	}
	for v := range h.Values(c.name) {
		if c.exact != nil && c.exact.match(string(v)) || c.re != nil && c.re.Match(v) {
			return true
		}
	}
	return false
}

// rule is one compiled policy.
type rule struct {
	index      int
	action     string
	plugin     string
	principals []pattern
	namespaces []pattern
	methods    []pattern
	paths      []pattern
	when       []headerCond
}

// peer is who is asking: the mTLS peer's ID, "" for a plain connection.
type peer struct {
	principal string // spiffe://td/ns/x/sa/y
	namespace string
}

func peerOf(info *filter.Info) peer {
	p := peer{principal: PeerID(info)}
	p.namespace = namespaceOf(p.principal)
	return p
}

func (r *rule) matches(req *stream.HeaderMap, p peer) bool {
	if len(r.principals) > 0 && (p.principal == "" || !anyMatch(r.principals, p.principal, strings.TrimPrefix(p.principal, "spiffe://"))) {
		return false
	}
	if len(r.namespaces) > 0 && (p.namespace == "" || !anyMatch(r.namespaces, p.namespace)) {
		return false
	}
	if len(r.methods) > 0 {
		m, _ := req.Get(stream.Method)
		if !anyMatch(r.methods, string(m)) {
			return false
		}
	}
	if len(r.paths) > 0 && !anyMatch(r.paths, urlPath(req)) {
		return false
	}
	for i := range r.when {
		if !r.when[i].match(req) {
			return false
		}
	}
	return true
}

// Authorizer is the compiled [[authorization]] of one config generation.
type Authorizer struct {
	custom, deny, allow []*rule
	factories           []filter.Factory
	// Metrics, when set, counts denials by policy.
	Metrics *Metrics
	// filter is the DENY/ALLOW check every stream gets (rbacFactory).
	filter rbacFilter
}

// NewAuthorizer compiles policies; plugins resolves CUSTOM actions'
// plugins. It returns nil (nothing to enforce) for no policies.
func NewAuthorizer(policies []config.Authorization, plugins map[string]filter.Factory) (*Authorizer, error) {
	if len(policies) == 0 {
		return nil, nil
	}
	a := &Authorizer{}
	a.filter.a = a
	for i, p := range policies {
		r := &rule{
			index:      i,
			action:     strings.ToUpper(p.Action),
			plugin:     p.Plugin,
			principals: compilePatterns(p.From.Principals),
			namespaces: compilePatterns(p.From.Namespaces),
			methods:    compilePatterns(p.To.Methods),
			paths:      compilePatterns(p.To.Paths),
		}
		for _, w := range p.When {
			c := headerCond{name: w.Name, present: w.Present, absent: w.Absent}
			if n, ok := strings.CutPrefix(c.name, "request.headers["); ok {
				c.name = strings.TrimSuffix(n, "]")
			}
			if w.Exact != "" {
				pt := compilePattern(w.Exact)
				c.exact = &pt
			}
			if w.Regex != "" {
				re, err := regexp.Compile("^(?:" + w.Regex + ")$")
				if err != nil {
					return nil, fmt.Errorf("authorization[%d].when %q: %w", i, w.Name, err)
				}
				c.re = re
			}
			r.when = append(r.when, c)
		}
		switch r.action {
		case "", "ALLOW":
			r.action = "ALLOW"
			a.allow = append(a.allow, r)
		case "DENY":
			a.deny = append(a.deny, r)
		case "CUSTOM":
			inner, ok := plugins[p.Plugin]
			if !ok {
				return nil, fmt.Errorf("authorization[%d]: CUSTOM plugin %q is not loaded", i, p.Plugin)
			}
			a.custom = append(a.custom, r)
			a.factories = append(a.factories, &customFactory{r: r, inner: inner})
		default:
			return nil, fmt.Errorf("authorization[%d]: action %q; want ALLOW, DENY or CUSTOM", i, p.Action)
		}
	}
	if len(a.deny) > 0 || len(a.allow) > 0 {
		a.factories = append(a.factories, rbacFactory{a})
	}
	return a, nil
}

// Factories are the filters to run, in order: one per CUSTOM policy, then
// the DENY/ALLOW check.
func (a *Authorizer) Factories() []filter.Factory {
	if a == nil {
		return nil
	}
	return a.factories
}

// Decide is the DENY/ALLOW verdict for req from the stream's peer; the
// string names the policy that decided, for the response details.
func (a *Authorizer) Decide(req *stream.HeaderMap, info *filter.Info) (bool, string) {
	p := peerOf(info)
	for _, r := range a.deny {
		if r.matches(req, p) {
			return false, fmt.Sprintf("rbac_access_denied_matched_policy[authorization.%d]", r.index)
		}
	}
	if len(a.allow) == 0 {
		return true, ""
	}
	for _, r := range a.allow {
		if r.matches(req, p) {
			return true, ""
		}
	}
	return false, "rbac_access_denied_matched_policy[none]"
}

type rbacFactory struct{ a *Authorizer }

func (rbacFactory) Name() string   { return AuthorizationFilter }
func (rbacFactory) FailOpen() bool { return false }
func (f rbacFactory) NewFilter(context.Context, filter.Stream) (filter.HTTPFilter, error) {
	return &f.a.filter, nil
}

// rbacFilter holds nothing of a stream: each Authorizer has one, and a
// pointer to it goes into every chain without an allocation.
type rbacFilter struct {
	passFilter
	a *Authorizer
}

// SkippedCallbacks implements filter.Skipper.
func (*rbacFilter) SkippedCallbacks() filter.Callbacks {
	return skipAllBut(filter.RequestHeadersCallback)
}

func (f *rbacFilter) OnRequestHeaders(s filter.Stream, _ bool) Status {
	if ok, details := f.a.Decide(s.RequestHeaders(), s.Info()); !ok {
		f.a.Metrics.denied(details)
		var hdr stream.HeaderMap
		hdr.Add("content-type", "text/plain")
		s.SendLocalReply(filter.LocalReply{
			Status:     http.StatusForbidden,
			Body:       []byte(DeniedBody),
			Header:     &hdr,
			Details:    details,
			GRPCStatus: grpcPermissionDenied,
		})
		return filter.StopIteration
	}
	return filter.Continue
}

// customFactory runs a CUSTOM policy's plugin, as Istio's ext-authz
// provider, on the streams its rule matches; others pass.
type customFactory struct {
	r     *rule
	inner filter.Factory
}

func (f *customFactory) Name() string {
	return fmt.Sprintf("sluice:ext-authz[%d]:%s", f.r.index, f.r.plugin)
}

func (f *customFactory) FailOpen() bool { return f.inner.FailOpen() }

func (f *customFactory) NewFilter(ctx context.Context, s filter.Stream) (filter.HTTPFilter, error) {
	if !f.r.matches(s.RequestHeaders(), peerOf(s.Info())) {
		return noFilter{}, nil
	}
	return f.inner.NewFilter(ctx, s)
}

// urlPath is the decoded path of a request's :path, without its query:
// what Istio's paths match.
func urlPath(h *stream.HeaderMap) string {
	p, _ := h.Get(stream.Path)
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if bytes.IndexByte(p, '%') < 0 {
		return string(p)
	}
	if u, err := url.PathUnescape(string(p)); err == nil {
		return u
	}
	return string(p)
}
