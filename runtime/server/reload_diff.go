package server

import (
	"reflect"
	"strings"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// namedChanges is what a reload did to one list of named things (routes,
// clusters, plugins): the names added, removed and changed.
type namedChanges struct {
	added, removed, changed []string
}

// diffNamed compares two lists by name; name returns an element's name.
func diffNamed[T any](old, cur []T, name func(T) string) namedChanges {
	var c namedChanges
	before := make(map[string]T, len(old))
	for _, o := range old {
		before[name(o)] = o
	}
	for _, n := range cur {
		o, ok := before[name(n)]
		switch {
		case !ok:
			c.added = append(c.added, name(n))
		case !reflect.DeepEqual(o, n):
			c.changed = append(c.changed, name(n))
		}
		delete(before, name(n))
	}
	for _, o := range old {
		if _, gone := before[name(o)]; gone {
			c.removed = append(c.removed, name(o))
		}
	}
	return c
}

func (c namedChanges) empty() bool {
	return len(c.added)+len(c.removed)+len(c.changed) == 0
}

// String reads "+a -b ~c" ("unchanged" when nothing moved).
func (c namedChanges) String() string {
	if c.empty() {
		return "unchanged"
	}
	var parts []string
	for _, set := range []struct {
		sign  string
		names []string
	}{{"+", c.added}, {"-", c.removed}, {"~", c.changed}} {
		for _, n := range set.names {
			parts = append(parts, set.sign+n)
		}
	}
	return strings.Join(parts, " ")
}

// reloadSummary says what a reload from old to cur changed, as one
// message a person reads ("routes +api ~web; clusters unchanged; ...")
// and as fields for a log search.
func reloadSummary(old, cur *config.Config) (string, []zap.Field) {
	lists := []struct {
		name string
		c    namedChanges
	}{
		{"routes", diffNamed(old.Routes, cur.Routes, func(r config.Route) string { return r.Name })},
		{"clusters", diffNamed(old.Clusters, cur.Clusters, func(c config.Cluster) string { return c.Name })},
		{"plugins", diffNamed(old.Plugins, cur.Plugins, func(p config.Plugin) string { return p.Name })},
	}
	var msg []string
	var fields []zap.Field
	for _, l := range lists {
		msg = append(msg, l.name+" "+l.c.String())
		if !l.c.empty() {
			fields = append(fields,
				zap.Strings(l.name+"_added", l.c.added),
				zap.Strings(l.name+"_removed", l.c.removed),
				zap.Strings(l.name+"_changed", l.c.changed))
		}
	}
	return strings.Join(msg, "; "), fields
}
