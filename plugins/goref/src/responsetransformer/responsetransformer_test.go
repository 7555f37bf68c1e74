package responsetransformer

import (
	"testing"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

func TestHeadersAndJSON(t *testing.T) {
	tr, err := Parse([]byte(`{"remove":{"headers":["server"],"json":["internal"]},
		"rename":{"headers":["x-old:x-new"]},"replace":{"headers":["x-v:2"],"json":["status:ok"]},
		"add":{"headers":["x-served-by:sluice","x-v:ignored"],"json":["n:1"],"json_types":["number"]},
		"append":{"headers":["x-multi:b"],"json":["list:c"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	in := [][2]string{{":status", "200"}, {"server", "up"}, {"x-old", "o"}, {"x-v", "1"}, {"x-multi", "a"},
		{"content-type", "application/json"}}
	out, changed, body := tr.Headers(in)
	if !changed || !body {
		t.Fatalf("changed=%v body=%v", changed, body)
	}
	want := map[string]string{"server": "", "x-old": "", "x-new": "o", "x-v": "2", "x-served-by": "sluice", ":status": "200"}
	for k, w := range want {
		got, ok := common.Header(out, k)
		if (w == "" && ok) || got != w {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, w)
		}
	}
	n := 0
	for _, kv := range out {
		if kv[0] == "x-multi" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("x-multi has %d values, want 2", n)
	}
	b, ok := tr.Body([]byte(`{"internal":"x","status":"bad","list":"a"}`))
	if w := `{"list":["a","c"],"n":1,"status":"ok"}`; !ok || string(b) != w {
		t.Errorf("body = %s, want %s", b, w)
	}
	if _, _, body := tr.Headers([][2]string{{"content-type", "text/html"}}); body {
		t.Error("an HTML body was selected for JSON transformation")
	}
}

func TestReplaceBody(t *testing.T) {
	tr, err := Parse([]byte(`{"replace":{"body":"{\"message\":\"hidden\"}"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, body := tr.Headers([][2]string{{"content-type", "text/plain"}}); !body {
		t.Error("replace.body did not ask for the body")
	}
	if b, ok := tr.Body([]byte("anything")); !ok || string(b) != `{"message":"hidden"}` {
		t.Errorf("body = %s", b)
	}
}

func TestParseErrors(t *testing.T) {
	for _, cfg := range []string{`{"add":{"headers":["x"]}}`, `{"add":{"body":"x"}}`, `{"remove":{"headers":[":status"]}}`, `{"add":{"querystring":["a:b"]}}`} {
		if _, err := Parse([]byte(cfg)); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
}
