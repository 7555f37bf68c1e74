// Package transform is what request-transformer and response-transformer
// share: Kong's "name:value" operations, applied in Kong's order (remove,
// rename, replace, add, append) to headers, query strings and JSON bodies,
// with values templated from the request.
package transform

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Pair is one "name:value" (or, for remove, "name") item.
type Pair struct {
	Name, Value string
	tmpl        []piece
}

// Ops are the five operations on one kind of target (headers, querystring
// or JSON body fields).
type Ops struct {
	Remove  []string
	Rename  []Pair // Value is the new name
	Replace []Pair
	Add     []Pair
	Append  []Pair
}

// Empty reports whether there is nothing to do.
func (o *Ops) Empty() bool {
	return len(o.Remove)+len(o.Rename)+len(o.Replace)+len(o.Add)+len(o.Append) == 0
}

// ParsePairs parses Kong's "name:value" list; key names the list in errors.
func ParsePairs(key string, items []string) ([]Pair, error) {
	out := make([]Pair, 0, len(items))
	for i, it := range items {
		// The item is not quoted back: it may hold a credential, and this
		// reason reaches the admin API and the proxy's log.
		name, value, ok := strings.Cut(it, ":")
		if !ok {
			return nil, fmt.Errorf("config: %s[%d]: not \"name:value\" (no colon)", key, i)
		}
		if strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("config: %s[%d]: not \"name:value\" (the name is empty)", key, i)
		}
		p := Pair{Name: strings.TrimSpace(name), Value: value}
		var err error
		if p.tmpl, err = parseTemplate(value); err != nil {
			return nil, fmt.Errorf("config: %s[%d]: %w", key, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseOps builds the operations for one target from Kong's five lists.
func ParseOps(target string, remove, rename, replace, add, appendL []string) (Ops, error) {
	var o Ops
	var err error
	for i, r := range remove {
		if strings.TrimSpace(r) == "" {
			return o, fmt.Errorf("config: remove.%s[%d]: empty name", target, i)
		}
		o.Remove = append(o.Remove, strings.TrimSpace(r))
	}
	if o.Rename, err = ParsePairs("rename."+target, rename); err != nil {
		return o, err
	}
	if o.Replace, err = ParsePairs("replace."+target, replace); err != nil {
		return o, err
	}
	if o.Add, err = ParsePairs("add."+target, add); err != nil {
		return o, err
	}
	if o.Append, err = ParsePairs("append."+target, appendL); err != nil {
		return o, err
	}
	return o, nil
}

// ---- templates: $(headers.NAME), $(headers["NAME"]), $(query_params.NAME) ----

type piece struct {
	lit       string
	source    string // "" for a literal, else headers or query_params
	name      string
	isLiteral bool
}

func parseTemplate(s string) ([]piece, error) {
	if !strings.Contains(s, "$(") {
		return nil, nil
	}
	var out []piece
	for {
		i := strings.Index(s, "$(")
		if i < 0 {
			if s != "" {
				out = append(out, piece{lit: s, isLiteral: true})
			}
			return out, nil
		}
		if i > 0 {
			out = append(out, piece{lit: s[:i], isLiteral: true})
		}
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			return nil, fmt.Errorf("template %q: missing )", s[i:]) // not the literal before it: it may be a credential
		}
		expr := strings.TrimSpace(s[i+2 : i+j])
		src, name, ok := strings.Cut(expr, ".")
		if !ok {
			if k := strings.Index(expr, "["); k > 0 && strings.HasSuffix(expr, "]") {
				src, name = expr[:k], strings.Trim(expr[k+1:len(expr)-1], `"'`)
				ok = true
			}
		}
		if !ok || (src != "headers" && src != "query_params") || name == "" {
			return nil, fmt.Errorf("template %q: only $(headers.NAME) and $(query_params.NAME) are supported", s[i:i+j+1])
		}
		out = append(out, piece{source: src, name: name})
		s = s[i+j+1:]
	}
}

// Request is what templates read.
type Request struct {
	Headers [][2]string
	Query   url.Values
}

// Value renders a pair's value for a request.
func (p Pair) Render(r *Request) string {
	if p.tmpl == nil {
		return p.Value
	}
	var b strings.Builder
	for _, pc := range p.tmpl {
		switch {
		case pc.isLiteral:
			b.WriteString(pc.lit)
		case pc.source == "headers":
			v, _ := common.Header(r.Headers, strings.ReplaceAll(pc.name, "_", "-"))
			if v == "" {
				v, _ = common.Header(r.Headers, pc.name)
			}
			b.WriteString(v)
		case pc.source == "query_params":
			b.WriteString(r.Query.Get(pc.name))
		}
	}
	return b.String()
}

// ---- headers ----

// Headers applies the operations to a header list. Pseudo-headers are left
// alone except through the methods' callers.
func (o *Ops) Headers(h [][2]string, r *Request) [][2]string {
	out := append([][2]string(nil), h...)
	for _, name := range o.Remove {
		out = removeHeader(out, name)
	}
	for _, p := range o.Rename {
		if v, ok := common.Header(out, p.Name); ok {
			out = removeHeader(out, p.Name)
			out = append(out, [2]string{strings.ToLower(p.Value), v})
		}
	}
	for _, p := range o.Replace {
		if _, ok := common.Header(out, p.Name); ok {
			out = append(removeHeader(out, p.Name), [2]string{strings.ToLower(p.Name), p.Render(r)})
		}
	}
	for _, p := range o.Add {
		if _, ok := common.Header(out, p.Name); !ok {
			out = append(out, [2]string{strings.ToLower(p.Name), p.Render(r)})
		}
	}
	for _, p := range o.Append {
		out = append(out, [2]string{strings.ToLower(p.Name), p.Render(r)})
	}
	return out
}

func removeHeader(h [][2]string, name string) [][2]string {
	out := h[:0]
	for _, kv := range h {
		if !strings.EqualFold(kv[0], name) {
			out = append(out, kv)
		}
	}
	return out
}

// ---- query string ----

// Query applies the operations to query parameters in place.
func (o *Ops) Query(q url.Values, r *Request) {
	for _, name := range o.Remove {
		q.Del(name)
	}
	for _, p := range o.Rename {
		if vs, ok := q[p.Name]; ok {
			q.Del(p.Name)
			q[p.Value] = vs
		}
	}
	for _, p := range o.Replace {
		if q.Has(p.Name) {
			q.Set(p.Name, p.Render(r))
		}
	}
	for _, p := range o.Add {
		if !q.Has(p.Name) {
			q.Set(p.Name, p.Render(r))
		}
	}
	for _, p := range o.Append {
		q.Add(p.Name, p.Render(r))
	}
}

// ---- JSON body ----

// convert types rendered body values: "string" (default), "number" or
// "boolean" per position, as Kong's json_types.
func convert(v string, typ string) any {
	switch typ {
	case "number":
		var n json.Number = json.Number(v)
		if _, err := n.Float64(); err == nil {
			return n
		}
	case "boolean":
		if v == "true" || v == "false" {
			return v == "true"
		}
	}
	return v
}

// JSONTypes are Kong's json_types of the replace, add and append tables:
// the type of each value, by position.
type JSONTypes struct {
	Replace, Add, Append []string
}

// JSON applies the operations to a JSON object body. A body that is not a
// JSON object is returned unchanged with ok false.
func (o *Ops) JSON(body []byte, r *Request, types JSONTypes) (out []byte, ok bool) {
	var m map[string]any
	if len(strings.TrimSpace(string(body))) == 0 {
		m = map[string]any{}
	} else if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return body, false
	}
	typ := func(list []string, i int) string {
		if i < len(list) {
			return list[i]
		}
		return "string"
	}
	for _, name := range o.Remove {
		delete(m, name)
	}
	for _, p := range o.Rename {
		if v, ok := m[p.Name]; ok {
			delete(m, p.Name)
			m[p.Value] = v
		}
	}
	for i, p := range o.Replace {
		if _, ok := m[p.Name]; ok {
			m[p.Name] = convert(p.Render(r), typ(types.Replace, i))
		}
	}
	for i, p := range o.Add {
		if _, ok := m[p.Name]; !ok {
			m[p.Name] = convert(p.Render(r), typ(types.Add, i))
		}
	}
	for i, p := range o.Append {
		v := convert(p.Render(r), typ(types.Append, i))
		switch old := m[p.Name].(type) {
		case nil:
			m[p.Name] = []any{v}
		case []any:
			m[p.Name] = append(old, v)
		default:
			m[p.Name] = []any{old, v}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return body, false
	}
	return b, true
}

// EncodeQuery encodes parameters in a stable order (sorted by name).
func EncodeQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String()
}

// IsJSON reports whether a content-type names JSON.
func IsJSON(contentType string) bool {
	ct := strings.ToLower(contentType)
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	return ct == "application/json" || strings.HasSuffix(ct, "+json")
}

// IsForm reports whether a content-type names an URL-encoded form.
func IsForm(contentType string) bool {
	ct := strings.ToLower(contentType)
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct) == "application/x-www-form-urlencoded"
}
