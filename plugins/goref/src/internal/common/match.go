package common

import (
	"fmt"
	"regexp"
	"strings"
)

// StringMatch is Istio's StringMatch: exactly one of exact, prefix, regex
// (RE2, matched against the whole value).
type StringMatch struct {
	Exact  *string `json:"exact"`
	Prefix *string `json:"prefix"`
	Regex  *string `json:"regex"`
	re     *regexp.Regexp
}

// Compile validates the match; where names it in errors.
func (m *StringMatch) Compile(where string) error {
	n := 0
	for _, p := range []*string{m.Exact, m.Prefix, m.Regex} {
		if p != nil {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%s: set exactly one of exact, prefix, regex", where)
	}
	if m.Regex != nil {
		re, err := regexp.Compile("^(?:" + *m.Regex + ")$")
		if err != nil {
			return fmt.Errorf("%s: regex %q: %w", where, *m.Regex, err)
		}
		m.re = re
	}
	return nil
}

// Match reports whether v matches; a missing value (ok false) never does.
func (m *StringMatch) Match(v string, ok bool) bool {
	if !ok {
		return false
	}
	switch {
	case m.Exact != nil:
		return v == *m.Exact
	case m.Prefix != nil:
		return strings.HasPrefix(v, *m.Prefix)
	case m.re != nil:
		return m.re.MatchString(v)
	}
	return false
}

// HeaderMatch is a set of header (and cookie) conditions that must all hold.
type HeaderMatch struct {
	Headers map[string]*StringMatch `json:"headers"`
	Cookies map[string]*StringMatch `json:"cookies"`
	URI     *StringMatch            `json:"uri"`
	Method  *StringMatch            `json:"method"`
}

// Compile validates every condition.
func (h *HeaderMatch) Compile(where string) error {
	for k, m := range h.Headers {
		if m == nil {
			return fmt.Errorf("%s.headers.%s: empty match", where, k)
		}
		if err := m.Compile(where + ".headers." + k); err != nil {
			return err
		}
	}
	for k, m := range h.Cookies {
		if m == nil {
			return fmt.Errorf("%s.cookies.%s: empty match", where, k)
		}
		if err := m.Compile(where + ".cookies." + k); err != nil {
			return err
		}
	}
	if h.URI != nil {
		if err := h.URI.Compile(where + ".uri"); err != nil {
			return err
		}
	}
	if h.Method != nil {
		if err := h.Method.Compile(where + ".method"); err != nil {
			return err
		}
	}
	return nil
}

// Match reports whether a request's headers meet every condition.
func (h *HeaderMatch) Match(headers [][2]string) bool {
	for k, m := range h.Headers {
		if !m.Match(Header(headers, k)) {
			return false
		}
	}
	if len(h.Cookies) > 0 {
		ch, _ := Header(headers, "cookie")
		for k, m := range h.Cookies {
			if !m.Match(Cookie(ch, k)) {
				return false
			}
		}
	}
	if h.URI != nil {
		p, _ := Header(headers, ":path")
		p, _ = SplitPath(p)
		if !h.URI.Match(p, true) {
			return false
		}
	}
	if h.Method != nil && !h.Method.Match(Header(headers, ":method")) {
		return false
	}
	return true
}
