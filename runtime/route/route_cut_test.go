package route

import (
	"fmt"
	"strings"
	"testing"
)

// cutConfig has more routes than minCut for every host, with literal
// paths that share, differ in and lack a second byte, exact, prefix and
// regex paths, methods, and routes with no path at all.
var cutConfig = func() string {
	var b strings.Builder
	b.WriteString("[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:9000\"]\n")
	for i, m := range []string{
		`path_prefix = "/one"`, `path_prefix = "/o"`, `path = "/"`, `path = "/a"`,
		`path_prefix = "/ab", methods = ["POST"]`, `path_regex = "/u[0-9]+"`, `path_regex = ".*x"`,
		`hosts = ["h.example"], path_prefix = "/b"`, `hosts = ["*.example"], path_prefix = "/c"`,
		`path_prefix = "/A"`, `path_prefix = "/%"`, `hosts = ["h.example"], path_prefix = "/"`,
		`path_prefix = "/ab"`, `methods = ["DELETE"]`, `path_prefix = "/"`,
	} {
		fmt.Fprintf(&b, "[[routes]]\nname = \"r%d\"\nmatch = { %s }\nbackends = [ { cluster = \"c\" } ]\n", i, m)
	}
	return b.String()
}()

// uncut is t with every candidate list walked whole, as before the cut.
func uncut(t *Table) *Table {
	u := *t
	whole := func(m map[string]*candidates) map[string]*candidates {
		out := map[string]*candidates{}
		for k, c := range m {
			out[k] = &candidates{all: c.all}
		}
		return out
	}
	u.exact, u.wild, u.withPort = whole(t.exact), whole(t.wild), whole(t.withPort)
	u.any = &candidates{all: t.any.all}
	return &u
}

// FuzzMatchCutKeepsFirstMatch: walking only the routes whose literal path
// fits the path's second byte picks the route the whole list, in config
// order, picks.
func FuzzMatchCutKeepsFirstMatch(f *testing.F) {
	for _, s := range []struct{ method, host, target string }{
		{"GET", "x", "/"}, {"GET", "x", ""}, {"GET", "x", "*"}, {"POST", "x", "/abc"}, {"GET", "x", "/abc"},
		{"GET", "h.example", "/b"}, {"GET", "a.example", "/c/d"}, {"GET", "x", "/u12"}, {"GET", "x", "/zzx"},
		{"DELETE", "x", "/q"}, {"GET", "x", "/%41b"}, {"GET", "x", "/%2541"}, {"GET", "h.example:80", "/one?x=1"},
		{"GET", "x", "/A"}, {"GET", "x", "/o"}, {"GET", "x", "/a"},
	} {
		f.Add(s.method, s.host, s.target)
	}
	tab, err := NewTable(parse(f, cutConfig), nil)
	if err != nil {
		f.Fatal(err)
	}
	if tab.any.bySecond == nil || tab.exact["h.example"].bySecond == nil {
		f.Fatal("the test table's lists are not cut")
	}
	whole := uncut(tab)
	f.Fuzz(func(t *testing.T, method, host, target string) {
		h := requestMap(method, host, target)
		got, want := tab.Match(h), whole.Match(h)
		if got != want {
			t.Fatalf("%s %s %q: cut list matched %v, whole list %v", method, host, target, name(got), name(want))
		}
	})
}

func name(rt *Route) string {
	if rt == nil {
		return "nothing"
	}
	return rt.Name
}
