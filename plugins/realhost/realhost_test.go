package realhost

// The built-in module on sluice's real Wasm host (hostabi), not the fake
// one: the same module, ABI and SDK paths the proxy uses, minus sockets.

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
)

type testMap struct{ pairs [][2]string }

func (m *testMap) Len() int               { return len(m.pairs) }
func (m *testMap) Pairs() [][2]string     { return append([][2]string(nil), m.pairs...) }
func (m *testMap) SetPairs(p [][2]string) { m.pairs = append([][2]string(nil), p...) }
func (m *testMap) Get(k string) (string, bool) {
	var vs []string
	for _, kv := range m.pairs {
		if strings.EqualFold(kv[0], k) {
			vs = append(vs, kv[1])
		}
	}
	return strings.Join(vs, ","), len(vs) > 0
}
func (m *testMap) Add(k, v string) { m.pairs = append(m.pairs, [2]string{strings.ToLower(k), v}) }
func (m *testMap) Set(k, v string) { m.Remove(k); m.Add(k, v) }
func (m *testMap) Remove(k string) {
	out := m.pairs[:0]
	for _, kv := range m.pairs {
		if !strings.EqualFold(kv[0], k) {
			out = append(out, kv)
		}
	}
	m.pairs = out
}

// testStream is the proxy's side of one stream.
type testStream struct {
	maps  map[hostabi.MapType]*testMap
	props map[string][]byte
	local *hostabi.LocalResponse
	// resumed is set from the host's goroutine (a tick) while the test
	// waits for it.
	resumed atomic.Int32
}

func newTestStream(req [][2]string, clientAddr string) *testStream {
	return &testStream{
		maps:  map[hostabi.MapType]*testMap{hostabi.RequestHeaders: {pairs: req}},
		props: map[string][]byte{"source.address": []byte(clientAddr)},
	}
}

func (s *testStream) Headers(t hostabi.MapType) hostabi.HeaderMap {
	if m, ok := s.maps[t]; ok {
		return m
	}
	return nil
}
func (s *testStream) SendLocalResponse(r hostabi.LocalResponse) { s.local = &r }
func (s *testStream) Resume(hostabi.StreamType)                 { s.resumed.Add(1) }
func (s *testStream) Close(hostabi.StreamType)                  {}
func (s *testStream) Property(path []string) ([]byte, bool) {
	v, ok := s.props[strings.Join(path, ".")]
	return v, ok
}
func (s *testStream) SetProperty(path []string, v []byte) error {
	s.props[strings.Join(path, ".")] = v
	return nil
}

func loadBuiltin(t *testing.T, e *hostabi.Engine, name string, config any) *hostabi.Plugin {
	t.Helper()
	cfg, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Load(context.Background(), hostabi.PluginConfig{Name: name, RootID: name, Wasm: plugins.Module(),
		PluginConfig: cfg, Trusted: true, Instances: 2})
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// request runs request headers (and, if not answered, response headers)
// through p and returns the stream.
func request(t *testing.T, p *hostabi.Plugin, req [][2]string, client string) *testStream {
	t.Helper()
	ctx := context.Background()
	ts := newTestStream(req, client)
	s, err := p.NewHTTPStream(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.OnDone()
	if _, err := s.OnRequestHeaders(true); err != nil {
		t.Fatal(err)
	}
	if ts.local == nil {
		ts.maps[hostabi.ResponseHeaders] = &testMap{pairs: [][2]string{{":status", "200"}}}
		if _, err := s.OnResponseHeaders(true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.OnLog(); err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestBuiltinsOnRealHost(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the built-in module with wazero's compiler")
	}
	ctx := context.Background()
	// The default cache directory is shared with other runs (a race run
	// reuses what a plain run compiled).
	e, err := hostabi.NewEngine(ctx, hostabi.EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)

	t.Run("key-auth", func(t *testing.T) {
		p := loadBuiltin(t, e, "key-auth", map[string]any{"keys": []map[string]string{{"key": "k1", "consumer": "alice"}}})
		if s := request(t, p, [][2]string{{":method", "GET"}, {":path", "/users"}}, "10.0.0.1:1"); s.local == nil || s.local.Status != 401 {
			t.Errorf("no key: %+v, want 401", s.local)
		}
		s := request(t, p, [][2]string{{":method", "GET"}, {":path", "/users"}, {"apikey", "k1"}}, "10.0.0.1:1")
		if s.local != nil {
			t.Fatalf("valid key: %+v", s.local)
		}
		if v, _ := s.maps[hostabi.RequestHeaders].Get("x-consumer-username"); v != "alice" {
			t.Errorf("consumer header = %q", v)
		}
		if v := string(s.props["sluice.consumer"]); v != "alice" {
			t.Errorf("sluice.consumer = %q", v)
		}
	})

	t.Run("rate-limiting", func(t *testing.T) {
		p := loadBuiltin(t, e, "rate-limiting", map[string]any{"minute": 5, "limit_by": "ip"})
		for i := 1; i <= 6; i++ {
			s := request(t, p, [][2]string{{":method", "GET"}, {":path", "/"}}, "10.9.9.9:5000")
			if i <= 5 && s.local != nil {
				t.Fatalf("request %d limited: %+v", i, s.local)
			}
			if i == 6 && (s.local == nil || s.local.Status != 429) {
				t.Fatalf("request 6: %+v, want 429", s.local)
			}
			if i == 5 {
				if v, _ := s.maps[hostabi.ResponseHeaders].Get("x-ratelimit-remaining-minute"); v != "0" {
					t.Errorf("request 5: remaining = %q", v)
				}
			}
		}
	})

	t.Run("canary", func(t *testing.T) {
		p := loadBuiltin(t, e, "canary", map[string]any{"http": []any{
			map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x-canary": map[string]string{"exact": "true"}}}},
				"route": []any{map[string]any{"subset": "v2"}}},
			map[string]any{"route": []any{map[string]any{"subset": "v1", "weight": 90}, map[string]any{"subset": "v2", "weight": 10}}},
		}})
		s := request(t, p, [][2]string{{":method", "GET"}, {":path", "/"}, {"x-canary", "true"}}, "10.0.0.1:1")
		if v, _ := s.maps[hostabi.RequestHeaders].Get("x-sluice-subset"); v != "v2" {
			t.Errorf("x-sluice-subset = %q", v)
		}
		if v := string(s.props["sluice.subset"]); v != "v2" {
			t.Errorf("sluice.subset = %q", v)
		}
		v2 := 0
		for i := 0; i < 2000; i++ {
			s := request(t, p, [][2]string{{":method", "GET"}, {":path", "/"}}, "10.0.0.1:1")
			if string(s.props["sluice.subset"]) == "v2" {
				v2++
			}
		}
		if v2 < 140 || v2 > 260 {
			t.Errorf("v2 got %d of 2000 requests, want about 200 (10%% +- 3%%)", v2)
		}
	})

	t.Run("cors", func(t *testing.T) {
		p := loadBuiltin(t, e, "cors", map[string]any{"origins": []string{"https://app.example.com"}})
		s := request(t, p, [][2]string{{":method", "OPTIONS"}, {":path", "/"}, {"origin", "https://app.example.com"},
			{"access-control-request-method", "POST"}}, "10.0.0.1:1")
		if s.local == nil || s.local.Status != 200 {
			t.Fatalf("preflight: %+v", s.local)
		}
		found := false
		for _, kv := range s.local.Headers {
			found = found || (kv[0] == "access-control-allow-origin" && kv[1] == "https://app.example.com")
		}
		if !found {
			t.Errorf("preflight headers %q lack the origin", s.local.Headers)
		}
	})

	t.Run("jwt", func(t *testing.T) {
		p := loadBuiltin(t, e, "jwt", map[string]any{"claims_to_verify": []string{"exp"},
			"credentials": []map[string]string{{"key": "iss1", "secret": "s"}}})
		s := request(t, p, [][2]string{{":method", "GET"}, {":path", "/"}}, "10.0.0.1:1")
		if s.local == nil || s.local.Status != 401 {
			t.Fatalf("no token: %+v", s.local)
		}
	})

	t.Run("fault delay resumed by a tick", func(t *testing.T) {
		p := loadBuiltin(t, e, "fault", map[string]any{"delay": map[string]any{"fixedDelay": "50ms"}})
		ts := newTestStream([][2]string{{":method", "GET"}, {":path", "/"}}, "10.0.0.1:1")
		s, err := p.NewHTTPStream(ctx, ts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.OnDone()
		start := time.Now()
		if a, err := s.OnRequestHeaders(true); err != nil || a != hostabi.Pause {
			t.Fatalf("OnRequestHeaders = %v, %v; want a pause", a, err)
		}
		for ts.resumed.Load() == 0 && time.Since(start) < 5*time.Second {
			time.Sleep(5 * time.Millisecond)
		}
		if ts.resumed.Load() != 1 {
			t.Fatal("the delayed request was never resumed")
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("resumed after %v, before the 50ms delay", d)
		}
	})

	t.Run("memory flat over 100,000 streams", func(t *testing.T) {
		if raceEnabled {
			t.Skip("single-goroutine and slow under -race")
		}
		p, err := e.Load(ctx, hostabi.PluginConfig{Name: "h", RootID: "add-header", Wasm: plugins.Module(),
			PluginConfig: []byte(`{"request_headers":{"x-a":"1"}}`), Trusted: true, Instances: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		run := func(n int) {
			for i := 0; i < n; i++ {
				ts := newTestStream([][2]string{{":method", "GET"}, {":path", "/"}}, "10.0.0.1:1")
				s, err := p.NewHTTPStream(ctx, ts)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.OnRequestHeaders(true); err != nil {
					t.Fatal(err)
				}
				s.OnLog()
				s.OnDone()
			}
		}
		run(50_000)
		before := p.Stats().MemoryBytes
		run(100_000)
		if before == 0 {
			t.Fatal("Stats reports no memory")
		}
		if after := p.Stats().MemoryBytes; after > before+65536 {
			t.Errorf("instance memory grew from %d to %d bytes", before, after)
		}
		if st := p.Stats(); st.Instances != 1 || st.Failures != 0 {
			t.Errorf("stats = %+v", st)
		}
	})

	t.Run("bad config refused", func(t *testing.T) {
		_, err := e.Load(ctx, hostabi.PluginConfig{Name: "x", RootID: "rate-limiting", Wasm: plugins.Module(),
			PluginConfig: []byte(`{"minutes":5}`), Trusted: true})
		if err == nil {
			t.Error("a misspelt key was accepted")
		}
	})
}
