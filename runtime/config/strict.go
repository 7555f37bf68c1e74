package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// checker walks the generic TOML tree against the Config type before the
// real decode. BurntSushi/toml stops at the first type error and reports
// unknown keys without array indices or lines; walking ourselves lets us
// report every unknown key and every type error at once, each with its full
// path and line.
type checker struct {
	file     string
	src      *sourceIndex
	problems []Problem
}

func (c *checker) add(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{
		File: c.file, Line: c.src.Line(path), Key: path, Msg: fmt.Sprintf(format, args...),
	})
}

func (c *checker) walk(v any, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		var text string
		switch x := v.(type) {
		case string:
			text = x
		case int64:
			text = strconv.FormatInt(x, 10)
		default:
			c.add(path, "expected a string, got %s", tomlType(v))
			return
		}
		u := reflect.New(t).Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText([]byte(text)); err != nil {
			c.add(path, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			c.add(path, "expected a table, got %s", tomlType(v))
			return
		}
		fields := tomlFields(t)
		for _, k := range sortedKeys(m) {
			sub := join(path, k)
			f, ok := fields[k]
			if !ok {
				msg := "unknown key"
				if s := suggest(k, fields); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				c.add(sub, "%s", msg)
				continue
			}
			c.walk(m[k], f.Type, sub)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			c.add(path, "expected a table, got %s", tomlType(v))
			return
		}
		if t.Elem().Kind() == reflect.Interface {
			return // free-form: plugin config, metadata
		}
		for _, k := range sortedKeys(m) {
			c.walk(m[k], t.Elem(), join(path, k))
		}
	case reflect.Slice:
		rv := reflect.ValueOf(v)
		if v == nil || rv.Kind() != reflect.Slice {
			c.add(path, "expected an array, got %s", tomlType(v))
			return
		}
		for i := 0; i < rv.Len(); i++ {
			c.walk(rv.Index(i).Interface(), t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			c.add(path, "expected a string, got %s", tomlType(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.add(path, "expected true or false, got %s", tomlType(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			c.add(path, "expected an integer, got %s", tomlType(v))
			return
		}
		if bits := t.Bits(); bits < 64 && (n > 1<<(bits-1)-1 || n < -1<<(bits-1)) {
			c.add(path, "%d is out of range", n)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(int64)
		if !ok {
			c.add(path, "expected an integer, got %s", tomlType(v))
			return
		}
		if n < 0 || (t.Bits() < 64 && uint64(n) > math.MaxUint64>>(64-t.Bits())) {
			c.add(path, "%d is out of range", n)
		}
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case float64, int64:
		default:
			c.add(path, "expected a number, got %s", tomlType(v))
		}
	}
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case nil:
		return "nothing"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("a %T", v)
}

func tomlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" || name == "" {
			continue
		}
		out[name] = f
	}
	return out
}

// suggest returns the valid key nearest to k by edit distance, or "" when
// nothing is close enough to be a plausible typo.
func suggest(k string, fields map[string]reflect.StructField) string {
	return Suggest(k, sortedKeys(fields))
}

// Suggest returns the name in names closest to k, if it is close enough
// to be what k meant ("" otherwise): the "did you mean" of every unknown
// name, config keys and built-in plugin names alike.
func Suggest(k string, names []string) string {
	best, bestD := "", math.MaxInt
	for _, name := range names {
		if d := editDistance(strings.ToLower(k), name); d < bestD {
			best, bestD = name, d
		}
	}
	if bestD <= 2 || bestD <= len(k)/3 {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
