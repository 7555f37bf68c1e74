package route

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// parse builds a config the way the runtime does, so the tests also prove
// that what they route is a config sluice accepts.
func parse(t testing.TB, toml string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.toml", []byte(toml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

const matchConfig = `
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9000"]

[[routes]]
name = "exact-host"
match = { hosts = ["api.example.com"], path_prefix = "/" }
backends = [ { cluster = "c" } ]

[[routes]]
name = "deep-wildcard"
match = { hosts = ["*.eu.example.com"], path_prefix = "/" }
backends = [ { cluster = "c" } ]

[[routes]]
name = "wildcard"
match = { hosts = ["*.example.com"], path_prefix = "/w" }
backends = [ { cluster = "c" } ]

[[routes]]
name = "ported"
match = { hosts = ["admin.test:8443"] }
backends = [ { cluster = "c" } ]

[[routes]]
name = "ipv6-literal"
match = { hosts = ["[::1]"], path_prefix = "/v6" }
backends = [ { cluster = "c" } ]

[[routes]]
name = "ipv6-ported"
match = { hosts = ["[::1]:8443"], path_prefix = "/p6" }
backends = [ { cluster = "c" } ]

[[routes]]
name = "exact-path"
match = { path = "/healthz" }
backends = [ { cluster = "c" } ]

[[routes]]
name = "regex"
match = { path_regex = "/users/[0-9]+", methods = ["GET", "HEAD"] }
backends = [ { cluster = "c" } ]

[[routes]]
name = "header-exact"
match = { path_prefix = "/h", headers = [ { name = "x-env", exact = "canary" } ] }
backends = [ { cluster = "c" } ]

[[routes]]
name = "header-regex"
match = { path_prefix = "/h", headers = [ { name = "X-Env", regex = "stag(e|ing)" } ] }
backends = [ { cluster = "c" } ]

[[routes]]
name = "header-present-absent"
match = { path_prefix = "/h", headers = [ { name = "authorization", present = true }, { name = "x-debug", absent = true } ] }
backends = [ { cluster = "c" } ]

[[routes]]
name = "query"
match = { path_prefix = "/q", query = [ { name = "v", exact = "2" }, { name = "beta", present = true }, { name = "old", absent = true } ] }
backends = [ { cluster = "c" } ]

[[routes]]
name = "query-regex"
match = { path_prefix = "/q", query = [ { name = "user id", regex = "a.c" } ] }
backends = [ { cluster = "c" } ]

[[routes]]
name = "api-post"
match = { path_prefix = "/api", methods = ["POST"] }
backends = [ { cluster = "c" } ]
`

func TestMatch(t *testing.T) {
	tab, err := NewTable(parse(t, matchConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		method  string
		host    string
		target  string
		headers map[string]string
		want    string // "" means no match
	}{
		{name: "exact host", host: "api.example.com", target: "/anything", want: "exact-host"},
		{name: "exact host with port and case", host: "API.Example.com:8080", target: "/x", want: "exact-host"},
		{name: "exact host trailing dot", host: "api.example.com.", target: "/x", want: "exact-host"},
		{name: "wildcard", host: "shop.example.com", target: "/w/1", want: "wildcard"},
		{name: "wildcard path mismatch falls to host-less", host: "shop.example.com", target: "/healthz", want: "exact-path"},
		{name: "deeper wildcard first in order", host: "a.eu.example.com", target: "/w", want: "deep-wildcard"},
		{name: "wildcard needs a label", host: "example.com", target: "/w", want: ""},
		{name: "wildcard for other domain", host: "shop.example.org", target: "/w", want: ""},
		{name: "host with port only matches that port", host: "admin.test:8443", target: "/z", want: "ported"},
		{name: "host without the port", host: "admin.test", target: "/z", want: ""},
		// The port is what follows the last colon when no ']' follows it.
		{name: "a bracket after the last colon is no port", host: "api.example.com:80]", target: "/x", want: ""},
		// An IPv6 literal's colons are its own: "[::1]" is a host
		// without a port and matches on any port.
		{name: "ipv6 literal host on a port", host: "[::1]:8080", target: "/v6", want: "ipv6-literal"},
		{name: "ipv6 literal host without a port", host: "[::1]", target: "/v6", want: "ipv6-literal"},
		{name: "ipv6 literal with port only matches that port", host: "[::1]:8443", target: "/p6", want: "ipv6-ported"},
		{name: "ipv6 literal on another port", host: "[::1]:8080", target: "/p6", want: ""},
		{name: "exact path", host: "other", target: "/healthz", want: "exact-path"},
		{name: "exact path is exact", host: "other", target: "/healthz/x", want: ""},
		{name: "regex path", host: "other", target: "/users/42", want: "regex"},
		{name: "regex is anchored", host: "other", target: "/x/users/42", want: ""},
		{name: "regex method mismatch", method: "DELETE", host: "other", target: "/users/42", want: ""},
		{name: "head allowed", method: "HEAD", host: "other", target: "/users/7", want: "regex"},
		{name: "header exact", host: "h", target: "/h", headers: map[string]string{"X-Env": "canary"}, want: "header-exact"},
		{name: "header regex", host: "h", target: "/h", headers: map[string]string{"x-env": "staging"}, want: "header-regex"},
		{name: "header regex is anchored", host: "h", target: "/h", headers: map[string]string{"x-env": "prestage"}, want: ""},
		{name: "header present and absent", host: "h", target: "/h", headers: map[string]string{"Authorization": "Bearer x"}, want: "header-present-absent"},
		{name: "header absent violated", host: "h", target: "/h", headers: map[string]string{"Authorization": "x", "X-Debug": "1"}, want: ""},
		{name: "query all conditions", host: "q", target: "/q?v=2&beta", want: "query"},
		{name: "query absent violated", host: "q", target: "/q?v=2&beta=1&old=1", want: ""},
		{name: "query exact mismatch", host: "q", target: "/q?v=3&beta=1", want: ""},
		{name: "query escaped name and value", host: "q", target: "/q?user+id=a%2Bc", want: "query-regex"},
		{name: "method", method: "POST", host: "x", target: "/api/orders", want: "api-post"},
		{name: "method mismatch", method: "GET", host: "x", target: "/api/orders", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := requestMap(method, tt.host, tt.target)
			for k, v := range tt.headers {
				r.Set(strings.ToLower(k), v)
			}
			got := ""
			if rt := tab.Match(r); rt != nil {
				got = rt.Name
			}
			if got != tt.want {
				t.Errorf("Match(%s %s%s) = %q, want %q", method, tt.host, tt.target, got, tt.want)
			}
		})
	}
}

func TestNewTableRouteNames(t *testing.T) {
	cfg := parse(t, `
mode = "sidecar"
[sidecar]
app = "127.0.0.1:8081"
peer_authentication = "disable"
[[services]]
name = "payments"
endpoints = ["127.0.0.1:9001"]
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9000"]
[[routes]]
name = "one"
backends = [ { cluster = "c" } ]
[[routes]]
name = "two"
backends = [ { cluster = "c" } ]
`)
	names := func(tab *Table) string {
		var ns []string
		for _, rt := range tab.Routes() {
			ns = append(ns, rt.Name)
		}
		return strings.Join(ns, ",")
	}
	tests := []struct {
		name    string
		routes  []string
		want    string
		wantErr string
	}{
		{name: "nil is the file's routes", routes: nil, want: "one,two"},
		{name: "subset in config order", routes: []string{"two", "one"}, want: "one,two"},
		{name: "generated by name", routes: []string{config.OutboundPrefix + "payments"}, want: "outbound|payments"},
		{name: "empty is none", routes: []string{}, want: ""},
		{name: "unknown", routes: []string{"three"}, wantErr: `unknown route "three"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable(cfg, tt.routes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(tab); got != tt.want {
				t.Errorf("routes = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSidecarOutboundRouting routes by Host with and without a port to
// the cluster generated for each service.
func TestSidecarOutboundRouting(t *testing.T) {
	cfg := parse(t, `
mode = "sidecar"
[sidecar]
app = "127.0.0.1:8081"
peer_authentication = "disable"
[[services]]
name = "payments"
endpoints = ["127.0.0.1:9001"]
[[services]]
name = "ledger"
hosts = ["ledger.default.svc"]
endpoints = ["127.0.0.1:9002"]
`)
	var out *config.Listener
	for i := range cfg.Listeners {
		if cfg.Listeners[i].Direction == "outbound" {
			out = &cfg.Listeners[i]
		}
	}
	if out == nil {
		t.Fatal("no outbound listener")
	}
	tab, err := NewTable(cfg, out.Routes)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"payments": "outbound|payments", "payments:80": "outbound|payments",
		"ledger:15006": "outbound|ledger", "ledger.default.svc": "outbound|ledger", "unknown": "",
	} {
		r := requestMap("GET", host, "/x")
		got := ""
		if rt := tab.Match(r); rt != nil {
			got = rt.PickBackend(r, "", 0).Cluster
		}
		if got != want {
			t.Errorf("host %q: cluster %q, want %q", host, got, want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tab, err := NewTable(parse(t, matchConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/orders", "/healthz", "/h"} {
		r := requestMap("POST", "shop.example.com:8080", target)
		r.Set("authorization", "x")
		if tab.Match(r) == nil {
			t.Fatalf("%s: no match", target)
		}
		if n := testing.AllocsPerRun(100, func() { tab.Match(r) }); n != 0 {
			t.Errorf("%s: %v allocations per Match, want 0", target, n)
		}
	}
}

// BenchmarkMatch measures Match on the test table (prefix and regex
// routes behind a wildcard host) and on a table of 500 exact hosts, where
// the host index, not a scan, must find the route.
func BenchmarkMatch(b *testing.B) {
	small, err := NewTable(parse(b, matchConfig), nil)
	if err != nil {
		b.Fatal(err)
	}
	var big strings.Builder
	big.WriteString("[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:9000\"]\n")
	for i := range 500 {
		fmt.Fprintf(&big, "[[routes]]\nname = \"r%d\"\nmatch = { hosts = [\"h%d.example.com\"], path_prefix = \"/\" }\nbackends = [ { cluster = \"c\" } ]\n", i, i)
	}
	large, err := NewTable(parse(b, big.String()), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, host, target string
		tab                *Table
	}{
		{"prefix", "shop.example.com:8080", "/api/v2/orders/17", small},
		{"regex", "other", "/users/42", small},
		{"hosts-500", "h499.example.com", "/x", large},
	} {
		b.Run(bc.name, func(b *testing.B) {
			method := "POST"
			if bc.name == "regex" {
				method = "GET"
			}
			r := requestMap(method, bc.host, bc.target)
			b.ReportAllocs()
			for b.Loop() {
				if bc.tab.Match(r) == nil {
					b.Fatal("no match")
				}
			}
		})
	}
	// The reference: the same 500-host lookup as a scan that checks each
	// route's hosts in turn, which is what the host index saves.
	b.Run("hosts-500-scan-reference", func(b *testing.B) {
		h := requestMap("POST", "h499.example.com", "/x")
		b.ReportAllocs()
		for b.Loop() {
			r := newRequest(h)
			host, _ := splitPort(string(r.authority()))
			var got *Route
			for _, rt := range large.routes {
				if (rt.anyHost() || rt.coversHost(host)) && rt.matches(&r) {
					got = rt
					break
				}
			}
			if got == nil {
				b.Fatal("no match")
			}
		}
	})
}

// requestMap is a request's header map as a codec delivers it.
func requestMap(method, authority, target string) *stream.HeaderMap {
	h := &stream.HeaderMap{}
	h.Set(stream.Method, method)
	h.Set(stream.Path, target)
	if authority != "" {
		h.Set(stream.Authority, authority)
	}
	return h
}

// fieldsOf is h's fields in a header map.
func fieldsOf(h http.Header) *stream.HeaderMap {
	m := &stream.HeaderMap{}
	for k, vs := range h {
		for _, v := range vs {
			m.Add(strings.ToLower(k), v)
		}
	}
	return m
}

// TestNewTableWithDerived: derive runs once per route as the table is
// built, and Match returns the route carrying what it derived (no side
// table to look up per request); a derive error fails the table with the
// route's name.
func TestNewTableWithDerived(t *testing.T) {
	cfg := parse(t, matchConfig)
	calls := map[string]int{}
	tab, err := NewTableWith(cfg, nil, func(rt *Route) (any, error) {
		calls[rt.Name]++
		return "derived:" + rt.Name, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range tab.Routes() {
		if calls[rt.Name] != 1 || rt.Derived != "derived:"+rt.Name {
			t.Errorf("route %q: derived %d times, Derived = %v", rt.Name, calls[rt.Name], rt.Derived)
		}
	}
	if len(calls) != len(tab.Routes()) {
		t.Errorf("derive saw %d routes, the table has %d", len(calls), len(tab.Routes()))
	}
	rt := tab.Match(requestMap("GET", "api.example.com", "/v1/users"))
	if rt == nil || rt.Derived != "derived:"+rt.Name {
		t.Fatalf("Match returned %+v", rt)
	}
	if plain, _ := NewTable(cfg, nil); plain.Routes()[0].Derived != nil {
		t.Error("NewTable set Derived")
	}

	_, err = NewTableWith(cfg, nil, func(rt *Route) (any, error) {
		return nil, errors.New("no such plugin")
	})
	if err == nil || !strings.Contains(err.Error(), "no such plugin") || !strings.Contains(err.Error(), "route \"") {
		t.Errorf("derive error gave %v", err)
	}
}

// TestMatchCatchAll: on a table whose routes name no host, a first route
// without conditions is every request's match (Match does not read the
// request); a first route with one is matched as before, the catch-all
// after it taking the rest.
func TestMatchCatchAll(t *testing.T) {
	const routes = `
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9000"]
`
	catchAll := routes + `
[[routes]]
name = "all"
backends = [ { cluster = "c" } ]

[[routes]]
name = "never"
match = { path_prefix = "/api" }
backends = [ { cluster = "c" } ]
`
	prefixFirst := routes + `
[[routes]]
name = "api"
match = { path_prefix = "/api", methods = ["GET"] }
backends = [ { cluster = "c" } ]

[[routes]]
name = "all"
backends = [ { cluster = "c" } ]
`
	for _, tc := range []struct {
		config, method, host, target, want string
	}{
		{catchAll, "GET", "a.example", "/api/x", "all"},
		{catchAll, "CONNECT", "", "a.example:443", "all"},
		{catchAll, "OPTIONS", "", "*", "all"},
		{prefixFirst, "GET", "a.example", "/api/x", "api"},
		{prefixFirst, "POST", "a.example", "/api/x", "all"},
		{prefixFirst, "GET", "a.example", "/x", "all"},
		{prefixFirst, "CONNECT", "", "a.example:443", "all"},
	} {
		tab, err := NewTable(parse(t, tc.config), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if rt := tab.Match(requestMap(tc.method, tc.host, tc.target)); rt != nil {
			got = rt.Name
		}
		if got != tc.want {
			t.Errorf("Match(%s %s %s) = %q, want %q", tc.method, tc.host, tc.target, got, tc.want)
		}
	}
}
