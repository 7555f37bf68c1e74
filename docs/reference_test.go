package docs

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// configKey is one key a config file may set, as the reference names it.
type configKey struct {
	path  string // "listeners.tls.cert": the TOML tables' names and the key
	field string // "config.TLS.Cert", for the failure message
	kind  string // a Go type, for the failure message
}

// configKeys walks config.Config by reflection, through its toml tags. A
// struct type met at several places (HeaderMatch, Retry, Limits, Outlier)
// is walked at the first only: the reference lists its keys once, and the
// other places name the table they share.
func configKeys() []configKey {
	var out []configKey
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if !f.IsExported() || tag == "-" || tag == "" {
				continue
			}
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			out = append(out, configKey{path: path, field: t.String() + "." + f.Name, kind: f.Type.String()})
			if ft.Kind() == reflect.Struct && !seen[ft] {
				walk(ft, path)
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
	return out
}

// refRow is one key documented in configuration.md.
type refRow struct {
	line                       int
	path                       string
	typ, def, reload, describe string
}

var (
	// A heading naming a table: "## `[[listeners]]`", "### `[listeners.tls]`".
	tableHeading = regexp.MustCompile("^#+ .*`\\[\\[?([a-z0-9_.]+)\\]\\]?`")
	// A row: | `key` | type | default | reload | what, with an example |
	keyRow = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|(.*)\\|\\s*$")
)

// referenceRows reads the tables of the reference. The rows under a heading
// that names a table ("## `[admin]`") are that table's keys; rows under any
// other heading are top-level keys.
func referenceRows(t *testing.T, file string) []refRow {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rows []refRow
	prefix := ""
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			prefix = ""
			if m := tableHeading.FindStringSubmatch(line); m != nil {
				prefix = m[1]
			}
			continue
		}
		m := keyRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		path := m[1]
		if prefix != "" {
			path = prefix + "." + path
		}
		cells := strings.Split(m[2], " | ")
		r := refRow{line: i + 1, path: path}
		if len(cells) >= 4 {
			r.typ, r.def, r.reload = strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
			r.describe = strings.TrimSpace(strings.Join(cells[3:], " | "))
		}
		rows = append(rows, r)
	}
	return rows
}

// TestConfigReferenceCoversEveryKey keeps configuration.md complete: every
// key of the config types (runtime/config, by their toml tags) has a row
// with its type, default, whether a reload applies it (hot) or it needs a
// restart, and a description; and every row is a key that exists.
func TestConfigReferenceCoversEveryKey(t *testing.T) {
	rows := referenceRows(t, "configuration.md")
	const file = "docs/configuration.md"
	documented := map[string]refRow{}
	for _, r := range rows {
		if prev, dup := documented[r.path]; dup {
			t.Errorf("%s:%d: `%s` is documented twice (also line %d)", file, r.line, r.path, prev.line)
		}
		documented[r.path] = r
	}
	keys := configKeys()
	exists := map[string]bool{}
	for _, k := range keys {
		exists[k.path] = true
		r, ok := documented[k.path]
		if !ok {
			table, key := "top-level keys", k.path
			if i := strings.LastIndex(k.path, "."); i >= 0 {
				table, key = "`["+k.path[:i]+"]` (or `[["+k.path[:i]+"]]`)", k.path[i+1:]
			}
			t.Errorf("%s lacks the config key %s (%s, a %s): add a row\n"+
				"    | `%s` | TYPE | DEFAULT | hot or restart | WHAT IT DOES, with an example |\n"+
				"  to the table under the heading that names %s",
				file, k.path, k.field, k.kind, key, table)
			continue
		}
		if r.typ == "" || r.def == "" || r.describe == "" {
			t.Errorf("%s:%d: `%s`: want | `key` | type | default | hot or restart | description |", file, r.line, k.path)
		}
		if !strings.HasPrefix(r.reload, "hot") && !strings.HasPrefix(r.reload, "restart") {
			t.Errorf("%s:%d: `%s`: the reload column says %q; want \"hot\" or \"restart\" (see config.RestartNeeded)", file, r.line, k.path, r.reload)
		}
	}
	var stale []string
	for _, r := range rows {
		if !exists[r.path] {
			stale = append(stale, fmt.Sprintf("%s:%d: documents `%s`, which is not a config key (renamed or removed? see runtime/config/config.go)", file, r.line, r.path))
		}
	}
	sort.Strings(stale)
	for _, s := range stale {
		t.Error(s)
	}
}

// TestConfigReferenceReloadColumn checks each row's Reload column against
// config.RestartNeeded, the code that decides it: two configs that differ
// in that key alone must need a restart exactly when the row says
// "restart".
func TestConfigReferenceReloadColumn(t *testing.T) {
	const file = "docs/configuration.md"
	for _, r := range referenceRows(t, "configuration.md") {
		var old, cur config.Config
		words := strings.Split(r.path, ".")
		if !vary(reflect.ValueOf(&old).Elem(), words, false) || !vary(reflect.ValueOf(&cur).Elem(), words, true) {
			continue // a table whose keys have rows of their own
		}
		restart := len(config.RestartNeeded(&old, &cur)) > 0
		if says := strings.HasPrefix(r.reload, "restart"); says != restart {
			want := "hot"
			if restart {
				want = "restart"
			}
			t.Errorf("%s:%d: `%s`: the reload column says %q, but config.RestartNeeded says %s", file, r.line, r.path, r.reload, want)
		}
	}
}

// vary walks v along the toml keys in words, making each table on the
// way exist (one element for an array of tables), and, when set, gives the
// last key a non-zero value. It reports false for a key it cannot vary (a
// table that is not optional).
func vary(v reflect.Value, words []string, set bool) bool {
	for i, w := range words {
		f, ok := fieldByTag(v, w)
		if !ok {
			return false
		}
		if i == len(words)-1 {
			if set {
				return nonZero(f)
			}
			return f.Kind() != reflect.Struct
		}
		for f.Kind() == reflect.Pointer || f.Kind() == reflect.Slice {
			if f.Kind() == reflect.Pointer {
				if f.IsNil() {
					f.Set(reflect.New(f.Type().Elem()))
				}
				f = f.Elem()
			} else {
				if f.Len() == 0 {
					f.Set(reflect.Append(f, reflect.Zero(f.Type().Elem())))
				}
				f = f.Index(0)
			}
		}
		v = f
	}
	return false
}

func fieldByTag(v reflect.Value, tag string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("toml"), ",")[0] == tag {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// nonZero sets f to some value other than its zero.
func nonZero(f reflect.Value) bool {
	switch f.Kind() {
	case reflect.String:
		f.SetString("x")
	case reflect.Bool:
		f.SetBool(true)
	case reflect.Int, reflect.Int64:
		f.SetInt(7)
	case reflect.Uint32:
		f.SetUint(7)
	case reflect.Pointer:
		f.Set(reflect.New(f.Type().Elem()))
		if e := f.Elem(); e.Kind() != reflect.Struct {
			return nonZero(e)
		}
	case reflect.Float64:
		f.SetFloat(1.5)
	case reflect.Slice:
		f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		if e := f.Index(0); e.Kind() != reflect.Struct {
			return nonZero(e)
		}
	case reflect.Map:
		f.Set(reflect.MakeMap(f.Type()))
		f.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf("v"))
	default:
		return false
	}
	return true
}
