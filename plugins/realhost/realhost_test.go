package realhost

// The built-in module on sluice's real Wasm host (hostabi), through the
// filtertest kit: the same module, ABI and SDK paths the proxy uses, minus
// sockets.

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/filtertest"
	"github.com/sluice-proxy/sluice/plugins/goref"
)

func TestKeyAuth(t *testing.T) {
	f := filtertest.LoadBuiltin(t, "key-auth", map[string]any{"keys": []map[string]string{{"key": "k1", "consumer": "alice"}}})
	if r := f.Do(filtertest.Request{Headers: [][2]string{{":path", "/users"}}}); r.Local == nil || r.Local.Status != 401 {
		t.Errorf("no key: %+v, want 401", r.Local)
	}
	r := f.Do(filtertest.Request{Headers: [][2]string{{":path", "/users"}, {"apikey", "k1"}, {"x-consumer-username", "mallory"}}})
	if r.Local != nil {
		t.Fatalf("valid key: %+v", r.Local)
	}
	if v, _ := r.RequestHeader("x-consumer-username"); v != "alice" {
		t.Errorf("consumer header = %q", v)
	}
	if v := string(r.Properties["sluice.consumer"]); v != "alice" {
		t.Errorf("sluice.consumer = %q", v)
	}
}

func TestRateLimiting(t *testing.T) {
	f := filtertest.LoadBuiltin(t, "rate-limiting", map[string]any{"minute": 5, "limit_by": "ip"})
	for i := 1; i <= 6; i++ {
		r := f.Do(filtertest.Request{ClientAddr: "10.9.9.9:5000"})
		if i <= 5 && r.Local != nil {
			t.Fatalf("request %d limited: %+v", i, r.Local)
		}
		if i == 5 {
			if v, _ := r.ResponseHeader("x-ratelimit-remaining-minute"); v != "0" {
				t.Errorf("request 5: remaining = %q", v)
			}
		}
		if i == 6 && (r.Local == nil || r.Local.Status != 429) {
			t.Fatalf("request 6: %+v, want 429", r.Local)
		}
	}
	if r := f.Do(filtertest.Request{ClientAddr: "10.9.9.8:5000"}); r.Local != nil {
		t.Error("another client was limited")
	}
}

func TestCanarySplit(t *testing.T) {
	f := filtertest.LoadBuiltin(t, "canary", map[string]any{"http": []any{
		map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x-canary": map[string]string{"exact": "true"}}}},
			"route": []any{map[string]any{"subset": "v2"}}},
		map[string]any{"route": []any{map[string]any{"subset": "v1", "weight": 90}, map[string]any{"subset": "v2", "weight": 10}}},
	}})
	r := f.Do(filtertest.Request{Headers: [][2]string{{"x-canary", "true"}}})
	if v, _ := r.RequestHeader("x-sluice-subset"); v != "v2" {
		t.Errorf("x-sluice-subset = %q", v)
	}
	if v := string(r.Properties["sluice.subset"]); v != "v2" {
		t.Errorf("sluice.subset = %q", v)
	}
	v2 := 0
	for i := 0; i < 2000; i++ {
		if string(f.Do(filtertest.Request{}).Properties["sluice.subset"]) == "v2" {
			v2++
		}
	}
	if v2 < 140 || v2 > 260 {
		t.Errorf("v2 got %d of 2000 requests, want about 200 (10%% +- 3%%)", v2)
	}
}

func TestCORSPreflight(t *testing.T) {
	f := filtertest.LoadBuiltin(t, "cors", map[string]any{"origins": []string{"https://app.example.com"}})
	r := f.Do(filtertest.Request{Headers: [][2]string{{":method", "OPTIONS"}, {"origin", "https://app.example.com"},
		{"access-control-request-method", "POST"}}})
	if r.Local == nil || r.Local.Status != 200 {
		t.Fatalf("preflight: %+v", r.Local)
	}
	if v, _ := r.LocalHeader("access-control-allow-origin"); v != "https://app.example.com" {
		t.Errorf("ACAO = %q", v)
	}
}

func TestJWTWithoutToken(t *testing.T) {
	f := filtertest.LoadBuiltin(t, "jwt", map[string]any{"claims_to_verify": []string{"exp"},
		"credentials": []map[string]string{{"key": "iss1", "secret": "s"}}})
	r := f.Do(filtertest.Request{})
	if r.Local == nil || r.Local.Status != 401 {
		t.Fatalf("no token: %+v", r.Local)
	}
	if v, _ := r.LocalHeader("www-authenticate"); !strings.HasPrefix(v, "Bearer") {
		t.Errorf("WWW-Authenticate = %q", v)
	}
}

func TestFaultDelayResumedByTick(t *testing.T) {
	f := filtertest.LoadBuiltin(t, "fault", map[string]any{"delay": map[string]any{"fixedDelay": "50ms"}})
	start := time.Now()
	r := f.Do(filtertest.Request{})
	if r.Paused || r.Local != nil {
		t.Fatalf("result %+v", r)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("resumed after %v, before the 50ms delay", d)
	}
}

// A long-running instance must not grow: the SDKs free per-stream state,
// and the Go SDK collects periodically, so 100,000 streams through a
// filter leave linear memory where it was after warm-up.
func TestMemoryFlatOver100000Streams(t *testing.T) {
	if raceEnabled {
		t.Skip("single-goroutine and slow under -race")
	}
	eachModule(t, "add-header", func(t *testing.T, load loader) {
		f := mustLoad(t, load, filtertest.Options{Config: map[string]any{"request_headers": map[string]string{"x-a": "1"}}})
		run := func(n int) {
			for i := 0; i < n; i++ {
				f.Do(filtertest.Request{})
			}
		}
		// Warm up past several of the Go SDK's forced collections (one per
		// 10,000 streams): measured, the high-water mark is reached by
		// 40,000.
		run(50_000)
		before := f.Stats().MemoryBytes
		if before == 0 {
			t.Fatal("Stats reports no memory")
		}
		n := 100_000
		if testing.Short() {
			n = 10_000
		}
		run(n)
		// One 64 KiB page of slack: where a collection lands relative to
		// the warm-up decides whether the heap's high-water mark has been
		// reached. Without the Go SDK's periodic collection this grows by
		// over 1 MiB.
		if after := f.Stats().MemoryBytes; after > before+65536 {
			t.Errorf("instance memory grew from %d to %d bytes over %d streams", before, after, n)
		}
		if st := f.Stats(); st.Instances != 1 || st.Failures != 0 {
			t.Errorf("stats = %+v", st)
		}
		if v, _ := f.Do(filtertest.Request{}).RequestHeader("x-a"); v != "1" {
			t.Errorf("request header x-a = %q, want 1", v)
		}
	})
}

// add-header adds to what the client sent (the old value stays) and sets
// response headers; an unknown key is refused.
func TestAddHeaderInModule(t *testing.T) {
	eachModule(t, "add-header", func(t *testing.T, load loader) {
		f := mustLoad(t, load, filtertest.Options{Config: `{"request_headers":{"X-Request-Source":"external"},"response_headers":{"x-served-by":"sluice"}}`})
		r := f.Do(filtertest.Request{Headers: [][2]string{{":path", "/"}, {"x-request-source", "internal"}}})
		if r.Local != nil || r.Paused {
			t.Fatalf("request stopped: reply %+v paused %v", r.Local, r.Paused)
		}
		if got := values(r.RequestHeaders, "x-request-source"); !slices.Equal(got, []string{"internal", "external"}) {
			t.Errorf("x-request-source values = %q, want the old one kept and external added", got)
		}
		if v, _ := r.ResponseHeader("x-served-by"); v != "sluice" {
			t.Errorf("x-served-by = %q, want sluice", v)
		}
		if _, err := load(t, filtertest.Options{Config: `{"bogus":1}`}); err == nil {
			t.Error("unknown config key accepted")
		}
	})
}

// TestSkipDefaultCallbacks: the built-ins opt in to skipping the callbacks
// they leave at the SDK's defaults. After its first stream, add-header
// (which handles request and response headers) is no longer entered for
// the response body or the log, and still adds its header; a plugin that answers the response
// (response-transformer) keeps its response callbacks.
func TestSkipDefaultCallbacks(t *testing.T) {
	req := filtertest.Request{ResponseBody: []byte("hello")}
	callsPerStream := func(f *filtertest.Filter) uint64 {
		before := f.Stats().Calls
		f.Do(req)
		return f.Stats().Calls - before
	}
	// The Go module's add-header: the Rust one tells the host at once
	// (TestRustBuiltinsSkipCallbacks).
	add := filtertest.Load(t, goref.Module(), filtertest.Options{Name: "add-header", RootID: "add-header",
		Config: map[string]any{"request_headers": map[string]string{"x-a": "1"}}})
	first, second, third := callsPerStream(add), callsPerStream(add), callsPerStream(add)
	// First: create, request headers, response headers, response body,
	// log, done, delete (the foreign call telling the host is a host
	// function, not counted). Then two fewer.
	if second != first-2 || third != second {
		t.Errorf("add-header calls per stream: %d, %d, %d; want the response and log callbacks skipped after the first", first, second, third)
	}
	if v, _ := add.Do(req).RequestHeader("x-a"); v != "1" {
		t.Errorf("add-header with callbacks skipped: x-a = %q", v)
	}
	rt := filtertest.LoadBuiltin(t, "response-transformer", map[string]any{"add": map[string]any{"headers": []string{"X-Served-By:sluice"}}})
	callsPerStream(rt)
	r := rt.Do(req)
	if v, _ := r.ResponseHeader("x-served-by"); v != "sluice" {
		t.Errorf("response-transformer after its first stream: x-served-by = %q", v)
	}
}

// TestRustBuiltinsSkipStreamDone: the Rust built-ins' streams end
// without proxy_on_done (the crate sets bit 7 of sluice_skip_callbacks:
// its stream contexts have no on_done) and begin with
// sluice_on_context_create_request_headers (context create and request
// headers in one call); and the crate frees a stream's context itself
// after the last callback its plugin wants (bit 8), so no
// proxy_on_delete comes either. A stream through a plugin that works in
// the request headers only enters the guest once. A plugin that skips
// request headers gets its context_create on its own. A stream answered
// locally (paused) keeps its context until proxy_on_delete.
func TestRustBuiltinsSkipStreamDone(t *testing.T) {
	for _, c := range []struct {
		name, plugin string
		config       any
		apikey       string
		want         uint64
	}{
		{"add-header", "add-header", map[string]any{"request_headers": map[string]string{"x-a": "1"}}, "k1", 1},
		{"key-auth", "key-auth", map[string]any{"keys": []map[string]string{{"key": "k1", "consumer": "alice"}}}, "k1", 1},
		{"ip-restriction", "ip-restriction", map[string]any{"allow": []string{"10.0.0.0/8"}}, "k1", 1},
		{"canary", "canary", map[string]any{"http": []any{map[string]any{"route": []any{map[string]any{"subset": "v1"}}}}}, "k1", 1},
		{"fault", "fault", map[string]any{"abort": map[string]any{"httpStatus": 503, "percentage": 0}}, "k1", 1},
		{"jwt", "jwt", map[string]any{"anonymous": "guest", "credentials": []map[string]string{{"key": "k", "secret": "s"}}}, "k1", 1},
		// These decide their response headers with the request and hand
		// them over then (sluice_defer_response_headers): once too.
		{"cors", "cors", map[string]any{"origins": []string{"https://app.example.com"}}, "k1", 1},
		{"rate-limiting", "rate-limiting", map[string]any{"minute": 1 << 40, "limit_by": "ip"}, "k1", 1},
		// Response headers alone: create, response headers.
		{"response-transformer", "response-transformer", map[string]any{"add": map[string]any{"headers": []string{"x-a:1"}}}, "k1", 2},
		// Refused (a local reply, the callback paused): the context
		// stays for proxy_on_delete.
		{"key-auth refused", "key-auth", map[string]any{"keys": []map[string]string{{"key": "k1", "consumer": "alice"}}}, "wrong", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filtertest.LoadBuiltin(t, c.plugin, c.config)
			req := filtertest.Request{Headers: [][2]string{{":path", "/"}, {"apikey", c.apikey}, {"origin", "https://app.example.com"}},
				ClientAddr: "10.0.0.1:5000"}
			f.Do(req)
			before := f.Stats().Calls
			if r := f.Do(req); (r.Local != nil) != (c.apikey != "k1") {
				t.Fatalf("local reply: %+v", r.Local)
			}
			if got := f.Stats().Calls - before; got != c.want {
				t.Errorf("guest calls per stream = %d, want %d", got, c.want)
			}
		})
	}
}
