package route

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

func TestRewrite(t *testing.T) {
	cfg := parse(t, `
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9000"]
[[routes]]
name = "strip"
match = { path_prefix = "/api/v2" }
strip_prefix = true
backends = [ { cluster = "c" } ]
[[routes]]
name = "strip-slash"
match = { path_prefix = "/s/" }
strip_prefix = true
backends = [ { cluster = "c" } ]
[[routes]]
name = "rewrite"
match = { path_prefix = "/old/" }
prefix_rewrite = "/new/"
host_rewrite = "backend.internal"
backends = [ { cluster = "c" } ]
[[routes]]
name = "host-only"
match = { path_prefix = "/h" }
host_rewrite = "h.internal"
backends = [ { cluster = "c" } ]
`)
	tab, err := NewTable(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target, wantPath, wantEscaped, wantHost, wantQuery string
	}{
		{target: "/api/v2/orders/1?x=1", wantPath: "/orders/1", wantEscaped: "/orders/1", wantHost: "in", wantQuery: "x=1"},
		{target: "/api/v2", wantPath: "/", wantEscaped: "/", wantHost: "in"},
		{target: "/api/v2x", wantPath: "/x", wantEscaped: "/x", wantHost: "in"},
		{target: "/s/x", wantPath: "/x", wantEscaped: "/x", wantHost: "in"},
		{target: "/api/v2/a%2Fb", wantPath: "/a/b", wantEscaped: "/a%2Fb", wantHost: "in"},
		{target: "/old/a/b", wantPath: "/new/a/b", wantEscaped: "/new/a/b", wantHost: "backend.internal"},
		{target: "/h/1", wantPath: "/h/1", wantEscaped: "/h/1", wantHost: "h.internal"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			h := requestMap("GET", "in", tt.target)
			rt := tab.Match(h)
			if rt == nil {
				t.Fatal("no match")
			}
			rt.Rewrite(h)
			target, _ := h.Get(stream.Path)
			host, _ := h.Get(stream.Authority)
			r := httptest.NewRequest("GET", string(target), nil)
			r.Host = string(host)
			if r.URL.Path != tt.wantPath || r.URL.EscapedPath() != tt.wantEscaped || r.Host != tt.wantHost || r.URL.RawQuery != tt.wantQuery {
				t.Errorf("got path %q escaped %q host %q query %q, want %q %q %q %q",
					r.URL.Path, r.URL.EscapedPath(), r.Host, r.URL.RawQuery, tt.wantPath, tt.wantEscaped, tt.wantHost, tt.wantQuery)
			}
		})
	}
}

const backendConfig = `
[[clusters]]
name = "v1"
endpoints = ["127.0.0.1:9001"]
[[clusters]]
name = "v2"
endpoints = ["127.0.0.1:9002"]
[[clusters]]
name = "debug"
endpoints = ["127.0.0.1:9003"]
[[routes]]
name = "split"
backends = [
  { cluster = "debug", headers = [ { name = "x-debug", exact = "1" }, { name = "x-user", present = true } ] },
  { cluster = "v1", weight = 90, subset = { version = "v1" } },
  { cluster = "v2", weight = 10, subset = { version = "v2" } },
  { cluster = "v2", weight = 0, subset = { version = "v3" } },
]
`

func TestPickBackend(t *testing.T) {
	tab, err := NewTable(parse(t, backendConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := tab.Routes()[0]
	tests := []struct {
		name    string
		headers map[string]string
		subset  string
		rnd     uint64
		want    string
		wantSub string
	}{
		{name: "header match wins", headers: map[string]string{"X-Debug": "1", "X-User": "u"}, want: "debug"},
		{name: "every header must match", headers: map[string]string{"X-Debug": "1"}, rnd: 0, want: "v1", wantSub: "v1"},
		{name: "weighted low end", rnd: 0, want: "v1", wantSub: "v1"},
		{name: "weighted 89 of 100", rnd: 89, want: "v1", wantSub: "v1"},
		{name: "weighted 90 of 100", rnd: 90, want: "v2", wantSub: "v2"},
		{name: "weighted wraps", rnd: 199, want: "v2", wantSub: "v2"},
		{name: "subset pins", subset: "v2", rnd: 0, want: "v2", wantSub: "v2"},
		{name: "zero-weight subset still reachable", subset: "v3", rnd: 5, want: "v2", wantSub: "v3"},
		{name: "unknown subset falls back to weights", subset: "v9", rnd: 95, want: "v2", wantSub: "v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			b := rt.PickBackend(fieldsOf(h), tt.subset, tt.rnd)
			if b == nil {
				t.Fatal("nil backend")
			}
			if b.Cluster != tt.want || b.Subset["version"] != tt.wantSub {
				t.Errorf("got %s (%s), want %s (%s)", b.Cluster, b.Subset["version"], tt.want, tt.wantSub)
			}
		})
	}
}

// TestWeightedSplit checks a 90/10 split lands within 3 points over 2,000
// picks with a seeded generator, so the test is deterministic.
func TestWeightedSplit(t *testing.T) {
	tab, err := NewTable(parse(t, backendConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := tab.Routes()[0]
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 2000
	counts := map[string]int{}
	for range n {
		counts[rt.PickBackend(fieldsOf(http.Header{}), "", rng.Uint64()).Cluster]++
	}
	for cluster, want := range map[string]float64{"v1": 0.9, "v2": 0.1} {
		got := float64(counts[cluster]) / n
		if got < want-0.03 || got > want+0.03 {
			t.Errorf("%s got %.3f of picks, want %.2f +- 0.03 (counts %v)", cluster, got, want, counts)
		}
	}
	if counts["debug"] != 0 {
		t.Errorf("header-only backend picked %d times without its headers", counts["debug"])
	}
}

// TestDrawsOnlyAmongWeighted checks that a route Draws says does not
// draw picks the same backend whatever rnd, header and subset, and that
// the 90/10 route draws.
func TestDrawsOnlyAmongWeighted(t *testing.T) {
	tab, err := NewTable(parse(t, backendConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !tab.Routes()[0].Draws() {
		t.Error("a route with two weighted backends does not draw")
	}
	for _, backends := range []string{
		`[ { cluster = "c" } ]`,
		`[ { cluster = "c", weight = 7, subset = { version = "v2" } } ]`,
		`[ { cluster = "d", headers = [ { name = "x-a", present = true } ] }, { cluster = "c", subset = { version = "v1" } } ]`,
		`[ { cluster = "d", headers = [ { name = "x-a", present = true } ] } ]`,
	} {
		cfg := parse(t, `
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9001"]
[[clusters]]
name = "d"
endpoints = ["127.0.0.1:9002"]
[[routes]]
name = "r"
backends = `+backends+"\n")
		tab, err := NewTable(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		rt := tab.Routes()[0]
		if rt.Draws() {
			t.Errorf("%s: draws", backends)
			continue
		}
		for _, h := range []http.Header{{}, {"X-A": {"1"}}} {
			for _, subset := range []string{"", "v1", "v2", "v9"} {
				want := rt.PickBackend(fieldsOf(h), subset, 0)
				for _, rnd := range []uint64{1, 2, 6, 7, 99, 1 << 63, ^uint64(0)} {
					if got := rt.PickBackend(fieldsOf(h), subset, rnd); got != want {
						t.Errorf("%s, %v, subset %q: rnd %d picks %v, 0 picks %v", backends, h, subset, rnd, got, want)
					}
				}
			}
		}
	}
}

func TestPickBackendOnlyHeaderBackends(t *testing.T) {
	cfg := parse(t, `
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9001"]
[[routes]]
name = "r"
backends = [ { cluster = "c", headers = [ { name = "x-a", present = true } ] } ]
`)
	tab, err := NewTable(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := tab.Routes()[0]
	if b := rt.PickBackend(fieldsOf(http.Header{}), "", 0); b != nil {
		t.Errorf("got %s without the header, want nil", b.Cluster)
	}
	if b := rt.PickBackend(fieldsOf(http.Header{"X-A": {"1"}}), "", 0); b == nil || b.Cluster != "c" {
		t.Errorf("got %v with the header, want c", b)
	}
}

func TestRouteCarriesConfig(t *testing.T) {
	cfg := parse(t, `
[[plugins]]
name = "auth"
wasm = "builtin:jwt"
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9001"]
[[clusters]]
name = "shadow"
endpoints = ["127.0.0.1:9002"]
[[routes]]
name = "explicit"
plugins = ["auth"]
timeout = "3s"
retry = { attempts = 4, on = ["5xx"] }
mirror = "shadow"
metadata = { filter_metadata = { ns = { k = "v" } } }
backends = [ { cluster = "c" } ]
[[routes]]
name = "defaults"
backends = [ { cluster = "c" } ]
`)
	tab, err := NewTable(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ex, def := tab.Routes()[0], tab.Routes()[1]
	if ex.Timeout.D() != 3*time.Second || ex.Retry.Attempts != 4 || ex.Retry.On[0] != "5xx" ||
		ex.Mirror != "shadow" || ex.Plugins[0] != "auth" || ex.Metadata["filter_metadata"] == nil {
		t.Errorf("explicit route lost config: %+v", ex.Route)
	}
	want := config.DefaultRetry()
	if def.Timeout.D() != config.DefaultRouteTimeout || def.Retry == nil || def.Retry.Attempts != want.Attempts ||
		len(def.Retry.On) != 2 || def.Retry.On[0] != "connect-failure" || def.Retry.On[1] != "refused-stream" {
		t.Errorf("default route: timeout %v retry %+v", def.Timeout, def.Retry)
	}
	// A route built from a hand-made config (no Load) still gets Istio's
	// default retry.
	rt, err := newRoute(0, config.Route{Name: "bare", Backends: []config.Backend{{Cluster: "c", Weight: 1}}})
	if err != nil || rt.Retry == nil || rt.Retry.Attempts != 2 {
		t.Errorf("bare route retry = %+v, %v", rt.Retry, err)
	}
}
