package realhost

import (
	"fmt"
	"testing"

	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
	"github.com/sluice-proxy/sluice/plugins/goref"
)

// BenchmarkBuiltinsOnRealHost is the Wasm cost of one request through each
// built-in plugin alone on sluice's host (stream create, request and
// response headers, log, done), without sockets or the proxy around it.
// The proxy's `make bench` puts the same in req/s against a route with no
// plugins.
func BenchmarkBuiltinsOnRealHost(b *testing.B) {
	cases := []struct {
		name   string
		config any
		req    [][2]string
	}{
		{"add-header", map[string]any{"request_headers": map[string]string{"x-a": "1"}}, nil},
		{"key-auth", map[string]any{"keys": []map[string]string{{"key": "k1", "consumer": "alice"}}}, [][2]string{{"apikey", "k1"}}},
		{"rate-limiting", map[string]any{"minute": 1 << 40, "limit_by": "ip"}, nil},
		{"cors", map[string]any{"origins": []string{"https://app.example.com"}}, [][2]string{{"origin", "https://app.example.com"}}},
		{"ip-restriction", map[string]any{"allow": []string{"10.0.0.0/8"}}, nil},
		{"request-transformer", map[string]any{"add": map[string]any{"headers": []string{"X-Request-Source:external"}}}, nil},
		{"response-transformer", map[string]any{"add": map[string]any{"headers": []string{"x-served-by:sluice"}}}, nil},
		{"canary", map[string]any{"http": []any{map[string]any{"route": []any{
			map[string]any{"subset": "v1", "weight": 90}, map[string]any{"subset": "v2", "weight": 10}}}}}, nil},
		{"fault", map[string]any{"abort": map[string]any{"httpStatus": 503, "percentage": 0}}, nil},
		{"response-ratelimiting", map[string]any{"limits": map[string]any{"sms": map[string]any{"minute": 1 << 40}}}, nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			f := filtertest.LoadBuiltin(b, c.name, c.config)
			req := filtertest.Request{Headers: append([][2]string{{":path", "/api/v2/orders"}}, c.req...), ClientAddr: "10.0.0.1:5000"}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if r := f.Do(req); r.Local != nil {
					b.Fatalf("%s answered locally: %+v", c.name, r.Local)
				}
			}
		})
	}
}

// BenchmarkRustPortsOnRealHost is BenchmarkBuiltinsOnRealHost for each
// built-in ported to Rust, in its Go original and its Rust module side by
// side (issue 14's aim: <= 2 us for a header-only plugin).
func BenchmarkRustPortsOnRealHost(b *testing.B) {
	cases := []struct {
		name   string
		config any
		req    [][2]string
	}{
		// No headers: the floor, what the host and this harness cost.
		{"add-header", nil, nil},
		{"add-header", map[string]any{"request_headers": map[string]string{"x-a": "1"}}, nil},
		{"add-header", map[string]any{"request_headers": map[string]string{"x-a": "1"}, "response_headers": map[string]string{"x-served-by": "sluice"}}, nil},
		{"ip-restriction", map[string]any{"allow": []string{"10.0.0.0/8"}}, nil},
		{"ip-restriction", map[string]any{"deny": []string{"192.0.2.0/24", "2001:db8::/32", "198.51.100.0/24", "203.0.113.0/24"}}, nil},
		{"key-auth", map[string]any{"keys": []map[string]string{{"key": "k1", "consumer": "alice"}}}, [][2]string{{"apikey", "k1"}}},
		{"response-transformer", map[string]any{"add": map[string]any{"headers": []string{"x-served-by:sluice"}}}, nil},
		{"request-transformer", map[string]any{"add": map[string]any{"headers": []string{"X-Request-Source:external"}}}, nil},
		{"cors", map[string]any{"origins": []string{"https://app.example.com"}}, [][2]string{{"origin", "https://app.example.com"}}},
		{"cors", map[string]any{"origins": []string{`https://[a-z0-9-]+\.example\.com`}, "credentials": true}, [][2]string{{"origin", "https://app.example.com"}}},
		{"canary", map[string]any{"http": []any{map[string]any{"route": []any{
			map[string]any{"subset": "v1", "weight": 90}, map[string]any{"subset": "v2", "weight": 10}}}}}, nil},
		{"canary", map[string]any{"http": []any{map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x-canary": map[string]string{"regex": "(?i)true|yes"}}}},
			"route": []any{map[string]any{"subset": "v2"}}}}}, [][2]string{{"x-canary", "yes"}}},
		{"fault", map[string]any{"abort": map[string]any{"httpStatus": 503, "percentage": 0}}, nil},
		{"fault", map[string]any{"abort": map[string]any{"httpStatus": 503}, "headers": map[string]any{"x-chaos": map[string]string{"exact": "on"}}}, nil},
	}
	for i, c := range cases {
		for _, m := range []struct {
			lang string
			wasm []byte
		}{{"go", goref.Module()}, {"rust", plugins.RustModule(c.name)}} {
			b.Run(fmt.Sprintf("%s/%d/%s", c.name, i, m.lang), func(b *testing.B) {
				f := filtertest.Load(b, m.wasm, filtertest.Options{Name: c.name, RootID: c.name, Config: c.config})
				req := filtertest.Request{Headers: append([][2]string{{":path", "/api/v2/orders"}}, c.req...), ClientAddr: "10.0.0.1:5000"}
				before := f.Stats().CallSeconds
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if r := f.Do(req); r.Local != nil {
						b.Fatalf("%s answered locally: %+v", c.name, r.Local)
					}
				}
				// The time spent in the guest's callbacks (with the
				// hostcalls they make), without the harness around them.
				b.ReportMetric((f.Stats().CallSeconds-before)*1e6/float64(b.N), "wasm-us/op")
			})
		}
	}
}
