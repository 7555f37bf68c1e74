package route

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// headerMatcher is a compiled config.HeaderMatch. The name is lower-cased
// once, as a header map's names are, so a lookup compares bytes without
// allocating.
type headerMatcher struct {
	key     string
	exact   string
	regex   *regexp.Regexp
	present bool
	absent  bool
}

func compileHeaders(hs []config.HeaderMatch) ([]headerMatcher, error) {
	out := make([]headerMatcher, 0, len(hs))
	for _, h := range hs {
		m := headerMatcher{key: strings.ToLower(h.Name), exact: h.Exact, present: h.Present, absent: h.Absent}
		if h.Regex != "" {
			re, err := compileFull(h.Regex)
			if err != nil {
				return nil, fmt.Errorf("header %q: %w", h.Name, err)
			}
			m.regex = re
		}
		out = append(out, m)
	}
	return out, nil
}

// match is true when any of the field's values in h meets the condition;
// Absent is true only when the field has no value at all.
func (m *headerMatcher) match(h *stream.HeaderMap) bool {
	found := false
	for i := range h.Len() {
		name, value := h.At(i)
		if string(name) != m.key {
			continue
		}
		found = true
		switch {
		case m.absent:
			return false
		case m.present:
			return true
		}
		if m.regex != nil && m.regex.Match(value) || m.regex == nil && string(value) == m.exact {
			return true
		}
	}
	return m.absent && !found
}

func (m *headerMatcher) matchValue(v string) bool {
	if m.regex != nil {
		return m.regex.MatchString(v)
	}
	return v == m.exact
}

// queryMatcher is a compiled query parameter condition; the name is
// compared with each parameter's decoded name.
type queryMatcher = headerMatcher

func compileQuery(qs []config.QueryMatch) ([]queryMatcher, error) {
	out, err := compileHeaders(qs)
	for i := range out {
		// Query names are case sensitive, unlike header names.
		out[i].key = qs[i].Name
	}
	return out, err
}

// matchQuery checks every condition against the raw query, scanning it in
// place rather than building url.Values; only escaped names or values are
// decoded.
func matchQuery(ms []queryMatcher, raw string) bool {
	for i := range ms {
		m := &ms[i]
		found := false
		matched := false
		for rest := raw; rest != "" && !matched; {
			var pair string
			pair, rest, _ = strings.Cut(rest, "&")
			if pair == "" {
				continue
			}
			k, v, _ := strings.Cut(pair, "=")
			if k = unescape(k); k != m.key {
				continue
			}
			found = true
			switch {
			case m.absent:
			case m.present:
				matched = true
			default:
				matched = m.matchValue(unescape(v))
			}
		}
		switch {
		case m.absent:
			if found {
				return false
			}
		case !matched:
			return false
		}
	}
	return true
}

func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return u
}
