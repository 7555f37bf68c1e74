package proxy

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

func TestSanitizeRequestHeaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      http.Header
		upgrade bool
		ok      bool
		want    http.Header
	}{
		{"nominated header removed, Connection keeps the rest",
			http.Header{"Connection": {"keep-alive, X-Foo"}, "X-Foo": {"1"}, "X-Bar": {"2"}}, false, true,
			http.Header{"Connection": {"keep-alive"}, "X-Bar": {"2"}}},
		{"only nominations: Connection goes too",
			http.Header{"Connection": {"x-foo", "x-bar"}, "X-Foo": {"1"}, "X-Bar": {"2"}}, false, true,
			http.Header{}},
		{"TE is left for the hop-by-hop pass",
			http.Header{"Connection": {"te"}, "Te": {"trailers"}}, false, true,
			http.Header{"Connection": {"te"}, "Te": {"trailers"}}},
		{"an upgrade keeps only its token",
			http.Header{"Connection": {"Upgrade, x-request-id"}, "Upgrade": {"websocket"}, "X-Request-Id": {"c"}}, true, true,
			http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}},
		{"internal headers removed",
			http.Header{"X-Sluice-Subset": {"v2"}, "X-Sluice-Limit": {"a=1"}, "X-Sluicey": {"kept"}, "X-Sluice-": {"gone"}}, false, true,
			http.Header{"X-Sluicey": {"kept"}}},
		{"X-Forwarded-For refused", http.Header{"Connection": {"X-Forwarded-For"}}, false, false, nil},
		{"pseudo-header refused", http.Header{"Connection": {":path"}}, false, false, nil},
		{"ten options refused", http.Header{"Connection": {"a,b,c,d,e", "f,g,h,i,j"}}, false, false, nil},
		{"nine options pass", http.Header{"Connection": {"a,b,c,d,e,f,g,h,close"}}, false, true, http.Header{"Connection": {"close"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m stream.HeaderMap
			for k, vs := range tc.in {
				for _, v := range vs {
					m.Add(k, v)
				}
			}
			ok := sanitizeRequestHeaders(&m, tc.upgrade)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			got := http.Header{}
			for name, value := range m.All() {
				got.Add(string(name), string(value))
			}
			if ok && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("headers %v, want %v", got, tc.want)
			}
		})
	}
}
