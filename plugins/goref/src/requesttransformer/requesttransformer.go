// Package requesttransformer is the request-transformer plugin (Kong's):
// headers, query string and JSON body fields of the request removed,
// renamed, replaced, added and appended, in that order, before it goes
// upstream.
package requesttransformer

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/plugins/src/internal/transform"
)

// Name is the plugin's root_id.
const Name = "request-transformer"

// Lists is one of Kong's five operation tables.
type Lists struct {
	Headers     []string `json:"headers"`
	Querystring []string `json:"querystring"`
	Body        []string `json:"body"`
	// URI (replace only) is the new path, query string kept.
	URI string `json:"uri"`
	// JSONTypes gives the JSON type of each body value: string (default),
	// number or boolean.
	JSONTypes []string `json:"json_types"`
}

// Config is Kong's request-transformer schema.
type Config struct {
	HTTPMethod string `json:"http_method"`
	Remove     Lists  `json:"remove"`
	Rename     Lists  `json:"rename"`
	Replace    Lists  `json:"replace"`
	Add        Lists  `json:"add"`
	Append     Lists  `json:"append"`
}

// Transformer is a validated configuration.
type Transformer struct {
	method         string
	uri            string
	headers, query transform.Ops
	body           transform.Ops
	replaceTypes   []string
	addTypes       []string
	appendTypes    []string
}

// Parse validates a configuration.
func Parse(data []byte) (*Transformer, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	for k, l := range map[string]Lists{"remove": c.Remove, "rename": c.Rename, "add": c.Add, "append": c.Append} {
		if l.URI != "" {
			return nil, fmt.Errorf("config: %s.uri: only replace.uri exists", k)
		}
	}
	t := &Transformer{method: strings.ToUpper(c.HTTPMethod), uri: c.Replace.URI,
		replaceTypes: c.Replace.JSONTypes, addTypes: c.Add.JSONTypes, appendTypes: c.Append.JSONTypes}
	if t.uri != "" && !strings.HasPrefix(t.uri, "/") {
		return nil, fmt.Errorf("config: replace.uri: %q must start with /", t.uri)
	}
	var err error
	if t.headers, err = transform.ParseOps("headers", c.Remove.Headers, c.Rename.Headers, c.Replace.Headers, c.Add.Headers, c.Append.Headers); err != nil {
		return nil, err
	}
	for _, n := range headerNames(&t.headers) {
		if strings.HasPrefix(n, ":") {
			return nil, fmt.Errorf("config: headers: %q is a pseudo-header; use http_method or replace.uri", n)
		}
	}
	if t.query, err = transform.ParseOps("querystring", c.Remove.Querystring, c.Rename.Querystring, c.Replace.Querystring, c.Add.Querystring, c.Append.Querystring); err != nil {
		return nil, err
	}
	if t.body, err = transform.ParseOps("body", c.Remove.Body, c.Rename.Body, c.Replace.Body, c.Add.Body, c.Append.Body); err != nil {
		return nil, err
	}
	for _, ts := range [][]string{t.replaceTypes, t.addTypes, t.appendTypes} {
		for _, ty := range ts {
			if ty != "string" && ty != "number" && ty != "boolean" {
				return nil, fmt.Errorf("config: json_types: %q is not string, number or boolean", ty)
			}
		}
	}
	return t, nil
}

func headerNames(o *transform.Ops) []string {
	names := append([]string(nil), o.Remove...)
	for _, ps := range [][]transform.Pair{o.Rename, o.Replace, o.Add, o.Append} {
		for _, p := range ps {
			names = append(names, p.Name)
		}
	}
	for _, p := range o.Rename {
		names = append(names, p.Value)
	}
	return names
}

// Result is the transformed request head.
type Result struct {
	Headers [][2]string
	// Changed says whether Headers differ from the input.
	Changed bool
	// TransformBody says the body (JSON or form) must be buffered and
	// passed to Body.
	TransformBody bool
	// Form says the body is application/x-www-form-urlencoded.
	Form bool
	// Template is what body templates read.
	Template *transform.Request
}

// Request transforms the request headers (pseudo-headers included).
func (t *Transformer) Request(h [][2]string) Result {
	p, _ := common.Header(h, ":path")
	path, rawQuery := common.SplitPath(p)
	q, _ := url.ParseQuery(rawQuery)
	tmpl := &transform.Request{Headers: h, Query: q}
	orig := url.Values{}
	for k, v := range q {
		orig[k] = append([]string(nil), v...)
	}
	tmpl.Query = orig

	out := t.headers.Headers(h, tmpl)
	if !t.query.Empty() || t.uri != "" {
		t.query.Query(q, tmpl)
		if t.uri != "" {
			path = t.uri
		}
		np := path
		if enc := transform.EncodeQuery(q); enc != "" {
			np += "?" + enc
		}
		out = setPseudo(out, ":path", np)
	}
	if t.method != "" {
		out = setPseudo(out, ":method", t.method)
	}
	r := Result{Headers: out, Changed: !equal(out, h), Template: tmpl}
	if !t.body.Empty() {
		ct, _ := common.Header(out, "content-type")
		switch {
		case transform.IsJSON(ct):
			r.TransformBody = true
		case transform.IsForm(ct):
			r.TransformBody, r.Form = true, true
		}
	}
	return r
}

// Body transforms a whole request body: a JSON object, or a form.
// A form body gets the query-string operations (json_types do not apply).
func (t *Transformer) Body(body []byte, tmpl *transform.Request, form bool) ([]byte, bool) {
	if form {
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return body, false
		}
		t.body.Query(q, tmpl)
		return []byte(transform.EncodeQuery(q)), true
	}
	return t.body.JSON(body, tmpl, transform.JSONTypes{Replace: t.replaceTypes, Add: t.addTypes, Append: t.appendTypes})
}

func setPseudo(h [][2]string, name, value string) [][2]string {
	for i, kv := range h {
		if kv[0] == name {
			h[i][1] = value
			return h
		}
	}
	return append([][2]string{{name, value}}, h...)
}

func equal(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
