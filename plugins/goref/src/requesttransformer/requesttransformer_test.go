package requesttransformer

import (
	"reflect"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

func TestRequestHeadersAndQuery(t *testing.T) {
	in := [][2]string{{":method", "GET"}, {":path", "/v1/items?a=1&drop=x&old=7"}, {":authority", "api"},
		{"x-remove", "1"}, {"x-old", "o"}, {"x-rep", "before"}, {"x-have", "keep"}, {"user-agent", "curl/8"}}
	tests := []struct {
		name string
		cfg  string
		want map[string]string // header -> value ("" = absent)
	}{
		{"kong example", `{"add":{"headers":["X-Request-Source:external"]}}`,
			map[string]string{"x-request-source": "external", ":path": "/v1/items?a=1&drop=x&old=7"}},
		{"order and conditions", `{
			"remove":{"headers":["x-remove"],"querystring":["drop"]},
			"rename":{"headers":["x-old:x-new"],"querystring":["old:new"]},
			"replace":{"headers":["x-rep:after","x-absent:nope"],"querystring":["a:2"]},
			"add":{"headers":["x-have:ignored","x-added:$(headers.user_agent)"],"querystring":["q:$(query_params.a)"]},
			"append":{"headers":["x-have:second"]}}`,
			map[string]string{"x-remove": "", "x-old": "", "x-new": "o", "x-rep": "after", "x-absent": "",
				"x-have": "keep", "x-added": "curl/8", ":path": "/v1/items?a=2&new=7&q=1"}},
		{"method and uri", `{"http_method":"post","replace":{"uri":"/v2/items"}}`,
			map[string]string{":method": "POST", ":path": "/v2/items?a=1&drop=x&old=7"}},
		{"bracket template", `{"add":{"headers":["x-t:[$(headers[\"x-have\"])]"]}}`,
			map[string]string{"x-t": "[keep]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Parse([]byte(tc.cfg))
			if err != nil {
				t.Fatal(err)
			}
			r := tr.Request(append([][2]string(nil), in...))
			if !r.Changed {
				t.Error("Changed = false")
			}
			for k, want := range tc.want {
				got, ok := common.Header(r.Headers, k)
				if want == "" && ok {
					t.Errorf("%s = %q, want it absent", k, got)
				} else if want != "" && got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
	// append keeps both values
	tr, _ := Parse([]byte(`{"append":{"headers":["x-have:second"]}}`))
	var vals []string
	for _, kv := range tr.Request(in).Headers {
		if kv[0] == "x-have" {
			vals = append(vals, kv[1])
		}
	}
	if !reflect.DeepEqual(vals, []string{"keep", "second"}) {
		t.Errorf("appended values = %q", vals)
	}
}

func TestBody(t *testing.T) {
	tr, err := Parse([]byte(`{"remove":{"body":["secret"]},"rename":{"body":["n:name"]},"replace":{"body":["mode:live"]},
		"add":{"body":["count:3","flag:true","src:$(headers.x_src)"],"json_types":["number","boolean","string"]},
		"append":{"body":["tags:new"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	h := [][2]string{{":path", "/"}, {"content-type", "application/json; charset=utf-8"}, {"x-src", "edge"}}
	r := tr.Request(h)
	if !r.TransformBody {
		t.Fatal("JSON body not selected for transformation")
	}
	out, ok := tr.Body([]byte(`{"secret":1,"n":"a","mode":"test","tags":["old"]}`), r.Template, r.Form)
	want := `{"count":3,"flag":true,"mode":"live","name":"a","src":"edge","tags":["old","new"]}`
	if !ok || string(out) != want {
		t.Errorf("body = %s (ok %v), want %s", out, ok, want)
	}
	if _, ok := tr.Body([]byte(`[1,2]`), r.Template, false); ok {
		t.Error("a JSON array was transformed")
	}
	if r := tr.Request([][2]string{{":path", "/"}, {"content-type", "text/plain"}}); r.TransformBody {
		t.Error("a text body was selected for transformation")
	}
}

func TestParseErrors(t *testing.T) {
	for _, cfg := range []string{
		`{"add":{"headers":["novalue"]}}`, `{"add":{"headers":[":path:/x"]}}`, `{"add":{"uri":"/x"}}`,
		`{"replace":{"uri":"x"}}`, `{"add":{"headers":["a:$(cookies.x)"]}}`, `{"add":{"json_types":["date"]}}`,
		`{"adds":{}}`,
	} {
		if _, err := Parse([]byte(cfg)); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
}

func TestFormBody(t *testing.T) {
	tr, err := Parse([]byte(`{"remove":{"body":["password"]},"rename":{"body":["u:user"]},"add":{"body":["source:$(headers.x_src)"]},"append":{"body":["tag:b"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := tr.Request([][2]string{{":path", "/login"}, {"content-type", "application/x-www-form-urlencoded; charset=utf-8"}, {"x-src", "edge"}})
	if !r.TransformBody || !r.Form {
		t.Fatalf("form body not selected: %+v", r)
	}
	out, ok := tr.Body([]byte("u=alice&password=x&tag=a"), r.Template, r.Form)
	if want := "source=edge&tag=a&tag=b&user=alice"; !ok || string(out) != want {
		t.Errorf("body = %q, want %q", out, want)
	}
}
