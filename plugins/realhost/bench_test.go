package realhost

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
)

// BenchmarkBuiltinsOnRealHost is the Wasm cost of one request through each
// built-in plugin alone on sluice's host (stream create, request and
// response headers, log, done), without sockets or the proxy around it.
// The proxy's `make bench` puts the same in req/s against a route with no
// plugins.
func BenchmarkBuiltinsOnRealHost(b *testing.B) {
	ctx := context.Background()
	e, err := hostabi.NewEngine(ctx, hostabi.EngineConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
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
			cfg, _ := json.Marshal(c.config)
			p, err := e.Load(ctx, hostabi.PluginConfig{Name: c.name, RootID: c.name, Wasm: plugins.Module(),
				PluginConfig: cfg, Trusted: true, Instances: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			req := append([][2]string{{":method", "GET"}, {":path", "/api/v2/orders"}, {":authority", "api"}}, c.req...)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ts := newTestStream(append([][2]string(nil), req...), "10.0.0.1:5000")
				s, err := p.NewHTTPStream(ctx, ts)
				if err != nil {
					b.Fatal(err)
				}
				s.OnRequestHeaders(true)
				if ts.local != nil {
					b.Fatalf("%s answered locally: %+v", c.name, ts.local)
				}
				ts.maps[hostabi.ResponseHeaders] = &testMap{pairs: [][2]string{{":status", "200"}}}
				s.OnResponseHeaders(true)
				s.OnLog()
				s.OnDone()
			}
		})
	}
}
