package realhost

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
	"github.com/sluice-proxy/sluice/plugins/goref"
)

// rustPortCase is a configuration and the requests a built-in ported to
// Rust must answer exactly as its Go original does.
type rustPortCase struct {
	plugin string
	config any
	reqs   []filtertest.Request
	// refused are configurations both must refuse.
	refused []any
	// rustRefuses are configurations the Go plugin accepts and the Rust
	// port refuses, with an error saying why: the documented differences
	// of Go's regular expressions on the regex crate (plugins/README.md).
	rustRefuses []any
	// metrics are compared after the requests.
	metrics []string
}

// rustPortCases: a plugin's port adds its cases here.
var rustPortCases = []rustPortCase{
	{
		plugin: "add-header",
		config: map[string]any{
			"request_headers":  map[string]string{"X-B": "2", "x-a": "1"},
			"response_headers": map[string]string{"x-served-by": "sluice", "Vary": "origin"},
		},
		reqs: []filtertest.Request{
			{Headers: [][2]string{{":path", "/"}}},
			// Existing values are kept: the header gets a second value.
			{Headers: [][2]string{{":path", "/"}, {"x-a", "0"}}, ResponseHeaders: [][2]string{{":status", "200"}, {"vary", "accept"}}},
			{Headers: [][2]string{{":path", "/"}}, Body: []byte("body"), ResponseBody: []byte("hello")},
		},
		refused: []any{
			map[string]any{"request_header": map[string]string{"a": "b"}},
			map[string]any{"request_headers": map[string]string{":path": "/x"}},
			map[string]any{"response_headers": map[string]string{"": "x"}},
			map[string]any{"request_headers": map[string]any{"a": 1}},
			"request_headers=1",
			"[1]",
		},
	},
	{plugin: "add-header", config: nil, reqs: []filtertest.Request{{Headers: [][2]string{{":path", "/"}}}}},
	{
		plugin: "ip-restriction",
		config: map[string]any{"allow": []string{"10.0.0.0/8", " 192.168.1.7 ", "2001:db8::/32"}},
		reqs: ipRequests("10.1.2.3:5000", "[::ffff:10.1.2.3]:5000", "11.0.0.1:5000", "192.168.1.7:80", "192.168.1.8:80",
			"[2001:db8::1]:443", "[2001:db9::1]:443", "[fe80::1%eth0]:1", "", "not-an-address"),
		refused: []any{
			map[string]any{"allow": []string{"10.0.0.0/33"}},
			map[string]any{"deny": []string{"x"}},
			map[string]any{"allow": []string{"10.0.0.0/08"}},
			map[string]any{"allow": []string{"fe80::%eth0/10"}},
			map[string]any{"allow": []any{1}},
			map[string]any{"status": 42},
			map[string]any{"status": -1},
			map[string]any{"whitelist": []string{"1.1.1.1"}},
		},
	},
	{
		plugin: "ip-restriction",
		config: map[string]any{"deny": []string{"10.0.0.0/8", "::1"}, "status": 401, "message": "go <away> & \"stay\""},
		reqs:   ipRequests("10.1.2.3:5000", "127.0.0.1:1", "[::1]:1", "[::ffff:10.9.9.9]:1", "", "1.2.3.4"),
	},
	{plugin: "ip-restriction", config: nil, reqs: ipRequests("10.1.2.3:5000", "")},
	{
		plugin: "key-auth",
		config: map[string]any{"key_names": []string{"apikey", "x-api-key"}, "hide_credentials": true,
			"keys": []map[string]string{{"key": "k1", "consumer": "alice"}, {"key": "k 2", "consumer": "bob"}}},
		reqs: keyRequests(
			[][2]string{{":method", "GET"}, {":path", "/users"}},
			[][2]string{{":method", "GET"}, {":path", "/users"}, {"apikey", "nope"}},
			[][2]string{{":method", "GET"}, {":path", "/users"}, {"apikey", ""}},
			[][2]string{{":method", "GET"}, {":path", "/users"}, {"x-api-key", "k1"}, {"x-consumer-username", "mallory"}, {"x-consumer-id", "m"}, {"x-anonymous-consumer", "true"}},
			[][2]string{{":method", "GET"}, {":path", "/users?z=1&apikey=k+2&a=x%20y&a=%2F"}},
			[][2]string{{":method", "GET"}, {":path", "/users?apikey=k1"}},
			[][2]string{{":method", "GET"}, {":path", "/users?apikey=k1;x=1"}},
			[][2]string{{":method", "OPTIONS"}, {":path", "/users"}},
		),
		refused: []any{
			map[string]any{"key_in_body": true},
			map[string]any{"keys": []map[string]string{{"key": "k"}}},
			map[string]any{"key_name": []string{"a"}},
			map[string]any{"keys_file": "/nope.json"},
			map[string]any{"keys": []map[string]any{{"key": "k", "consumer": "c", "extra": 1}}},
			map[string]any{"hide_credentials": "yes"},
		},
	},
	{
		plugin: "key-auth",
		config: map[string]any{"anonymous": "guest", "run_on_preflight": false, "realm": `a"b`, "keys": []map[string]string{{"key": "k1", "consumer": "alice"}}},
		reqs: keyRequests(
			[][2]string{{":method", "GET"}, {":path", "/"}},
			[][2]string{{":method", "GET"}, {":path", "/"}, {"apikey", "x"}},
			[][2]string{{":method", "OPTIONS"}, {":path", "/"}},
			[][2]string{{":method", "GET"}, {":path", "/?apikey=k1"}},
		),
	},
	{
		plugin: "response-transformer",
		config: map[string]any{
			"remove":  map[string]any{"headers": []string{"server"}, "json": []string{"internal"}},
			"rename":  map[string]any{"headers": []string{"x-old:x-new"}, "json": []string{"old:new"}},
			"replace": map[string]any{"headers": []string{"x-v:2"}, "json": []string{"status:ok", "count:7"}, "json_types": []string{"string", "number"}},
			"add":     map[string]any{"headers": []string{"x-served-by: sluice", "x-v:ignored", "x-t:$(headers.user_agent)"}, "json": []string{"n:1.50", "flag:true"}, "json_types": []string{"number", "boolean"}},
			"append":  map[string]any{"headers": []string{"x-multi:b"}, "json": []string{"list:c", "one:2"}},
		},
		reqs: []filtertest.Request{
			{Headers: [][2]string{{":path", "/"}, {"user-agent", "ua"}},
				ResponseHeaders: [][2]string{{":status", "200"}, {"server", "up"}, {"x-old", "o"}, {"x-v", "1"}, {"x-multi", "a"},
					{"content-type", "application/json; charset=utf-8"}, {"content-length", "99"}},
				ResponseBody: []byte(`{"internal":"x","status":"bad","list":"a","one":{"z":1.0,"a":[1e21,2e-7,"<&>"]},"old":null,"count":1,"big":123456789012345678901}`)},
			{ResponseHeaders: [][2]string{{":status", "200"}, {"content-type", "text/html"}, {"content-length", "2"}}, ResponseBody: []byte("hi")},
			{ResponseHeaders: [][2]string{{":status", "204"}, {"content-type", "application/json"}}},
			{ResponseHeaders: [][2]string{{":status", "200"}, {"content-type", "application/problem+json"}}, ResponseBody: []byte(`[1,2]`)},
			{ResponseHeaders: [][2]string{{":status", "200"}, {"content-type", "application/json"}}, ResponseBody: []byte(`{"a":1e400}`)},
			{ResponseHeaders: [][2]string{{":status", "200"}, {"content-type", "application/json"}}, ResponseBody: []byte(" \n")},
		},
		refused: []any{
			map[string]any{"add": map[string]any{"headers": []string{"x"}}},
			map[string]any{"add": map[string]any{"body": "x"}},
			map[string]any{"remove": map[string]any{"headers": []string{":status"}}},
			map[string]any{"add": map[string]any{"querystring": []string{"a:b"}}},
			map[string]any{"add": map[string]any{"json": []string{"a:$(cookies.x)"}}},
			map[string]any{"remove": map[string]any{"json": []string{" "}}},
			map[string]any{"replace": map[string]any{"body": 1}},
		},
	},
	{
		plugin: "response-transformer",
		config: map[string]any{"replace": map[string]any{"body": `{"message":"hidden"}`}, "add": map[string]any{"headers": []string{"x-a:1"}}},
		reqs: []filtertest.Request{
			{ResponseHeaders: [][2]string{{":status", "500"}, {"content-type", "text/plain"}, {"content-length", "8"}}, ResponseBody: []byte("anything")},
			{ResponseHeaders: [][2]string{{":status", "500"}, {"x-a", "0"}}},
		},
	},
	{
		plugin: "request-transformer",
		config: map[string]any{
			"http_method": "post",
			"remove":      map[string]any{"headers": []string{"x-debug"}, "querystring": []string{"debug"}, "body": []string{"password"}},
			"rename":      map[string]any{"headers": []string{"x-old:x-new"}, "querystring": []string{"q:query"}, "body": []string{"u:user"}},
			"replace":     map[string]any{"headers": []string{"x-rep:after"}, "querystring": []string{"a:2"}, "body": []string{"mode:live"}, "uri": "/v2/items"},
			"add": map[string]any{"headers": []string{"X-Request-Source:external", "x-client:$(headers.user_agent)", "x-q:$(query_params.q)"},
				"querystring": []string{`src:$(headers["x-src"])`, "sp:a b/c"}, "body": []string{"count:3", "flag:true", "src:$(headers.x_src)"},
				"json_types": []string{"number", "boolean"}},
			"append": map[string]any{"headers": []string{"x-multi:b"}, "querystring": []string{"t:2"}, "body": []string{"tags:new"}},
		},
		reqs: []filtertest.Request{
			{Headers: [][2]string{{":method", "GET"}, {":path", "/v1/items?a=1&debug=x&q=term&t=1"}, {"user-agent", "ua"}, {"x-debug", "1"},
				{"x-old", "o"}, {"x-rep", "before"}, {"x-multi", "a"}, {"x-src", "edge"}, {"content-type", "application/json"}, {"content-length", "60"}},
				Body: []byte(`{"password":"x","u":"alice","mode":"test","tags":["old"],"n":1.0}`)},
			{Headers: [][2]string{{":method", "PUT"}, {":path", "/login?a=%zz&q=1"}, {"content-type", "application/x-www-form-urlencoded"}},
				Body: []byte("u=alice&password=x&tag=a+b")},
			{Headers: [][2]string{{":path", "/f"}, {"content-type", "application/x-www-form-urlencoded"}}, Body: []byte("a=1;b=2")},
			{Headers: [][2]string{{":path", "/j"}, {"content-type", "application/json"}}, Body: []byte(`[1]`)},
			{Headers: [][2]string{{":path", "/j"}, {"content-type", "application/json"}}, Body: []byte{}},
			{Headers: [][2]string{{":path", "/t"}, {"content-type", "text/plain"}}, Body: []byte("plain")},
			{Headers: [][2]string{{":path", "/n"}}},
		},
		refused: []any{
			map[string]any{"add": map[string]any{"headers": []string{"novalue"}}},
			map[string]any{"add": map[string]any{"headers": []string{":path:/x"}}},
			map[string]any{"add": map[string]any{"uri": "/x"}},
			map[string]any{"replace": map[string]any{"uri": "x"}},
			map[string]any{"add": map[string]any{"headers": []string{"a:$(cookies.x)"}}},
			map[string]any{"add": map[string]any{"json_types": []string{"date"}}},
			map[string]any{"adds": map[string]any{}},
			map[string]any{"rename": map[string]any{"headers": []string{"x-a::path"}}},
		},
	},
	{plugin: "request-transformer", config: map[string]any{"add": map[string]any{"headers": []string{"x-a:1"}}},
		reqs: []filtertest.Request{{Headers: [][2]string{{":path", "/"}}}, {Headers: [][2]string{{":path", "/"}, {"x-a", "0"}}}}},
	// Only fixed additions: the Rust plugins add them by hostcalls instead
	// of rewriting the map; names repeated in another case, one present.
	{plugin: "request-transformer", config: map[string]any{
		"add":    map[string]any{"headers": []string{"X-A:1", "x-a:2", "X-B:3"}},
		"append": map[string]any{"headers": []string{"x-a:4", "X-M:5"}}},
		reqs: []filtertest.Request{{Headers: [][2]string{{":path", "/"}}}, {Headers: [][2]string{{":path", "/"}, {"x-b", "0"}, {"x-m", "0"}}}}},
	{plugin: "response-transformer", config: map[string]any{
		"add":    map[string]any{"headers": []string{"X-Served-By:sluice", "x-served-by:again", "x-c:1"}},
		"append": map[string]any{"headers": []string{"x-m:1", "x-c:2"}}},
		reqs: []filtertest.Request{
			{ResponseHeaders: [][2]string{{":status", "200"}, {"content-length", "2"}}, ResponseBody: []byte("hi")},
			{ResponseHeaders: [][2]string{{":status", "200"}, {"x-served-by", "app"}, {"x-m", "0"}}},
		}},
	{plugin: "key-auth", config: map[string]any{"realm": `a"b`, "key_in_header": false},
		reqs: keyRequests([][2]string{{":method", "GET"}, {":path", "/"}, {"apikey", "k1"}})},
	{plugin: "add-header", config: map[string]any{"Request_Headers": map[string]string{"x-a": "1"}},
		reqs: []filtertest.Request{{Headers: [][2]string{{":path", "/"}}}}},
	{
		plugin: "cors",
		config: map[string]any{"origins": []string{"https://app.example.com/", `https://[\w-]+\.example\.org`, `(?i)https://K\.example\.net`, `http://\d+\.test`},
			"methods": []string{"GET", "POST"}, "max_age": 3600, "credentials": true, "exposed_headers": []string{"x-total", "x-page"}, "private_network": true},
		reqs: corsRequests("https://app.example.com", "HTTPS://APP.example.com/", "https://app.example.com.evil", "https://a-1.example.org",
			"https://a.b.example.org", "https://\u00e9.example.org", "https://\u212a.example.net", "https://k.example.net", "http://42.test",
			"http://\u0664\u0662.test", "https://\xffapp.example.com", "", "null"),
		refused: []any{
			map[string]any{"origins": []string{"(("}},
			map[string]any{"origins": []string{"a**"}},
			map[string]any{"origins": []string{"x{1001}"}},
			map[string]any{"origins": []string{`(?x)a`}},
			map[string]any{"methods": []string{"get"}},
			map[string]any{"max_age": -1},
			map[string]any{"max_age": 1.5},
			map[string]any{"origin": []string{"x"}},
			map[string]any{"credentials": "yes"},
		},
		rustRefuses: []any{
			map[string]any{"origins": []string{`https://\pL+\.example`}},
			map[string]any{"origins": []string{`\x{D800}`}},
		},
	},
	{
		plugin: "cors",
		config: map[string]any{"headers": []string{"x-a", "x-b"}},
		reqs:   corsRequests("https://any.example", ""),
	},
	{
		plugin: "cors",
		config: map[string]any{"origins": []string{"*"}, "credentials": true, "preflight_continue": true},
		reqs:   corsRequests("https://any.example", ""),
	},
	{
		plugin: "canary",
		config: map[string]any{"sticky": map[string]any{"header": "x-user"}, "http": []any{
			map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x-canary": map[string]string{"exact": "true"}}},
				map[string]any{"cookies": map[string]any{"beta": map[string]string{"prefix": "y"}}, "uri": map[string]string{"regex": `/api/v\d+/.*`}, "method": map[string]string{"exact": "GET"}}},
				"route": []any{map[string]any{"destination": map[string]string{"host": "orders", "subset": "v2"}}}},
			map[string]any{"route": []any{map[string]any{"subset": "v1", "weight": 50}, map[string]any{"subset": "v2", "weight": 30}, map[string]any{"subset": "v3", "weight": 20}}},
		}},
		reqs: canaryRequests(
			[][2]string{{"x-canary", "true"}, {"x-sluice-subset", "v9"}},
			[][2]string{{":path", "/api/v12/orders?x=1"}, {"cookie", "a=1; beta=yes"}},
			// These fall to the split: the sticky key makes the pick the same.
			[][2]string{{":path", "/api/v12/orders"}, {":method", "POST"}, {"cookie", "beta=yes"}, {"x-user", "dave"}},
			[][2]string{{":path", "/api/v\u0661/orders"}, {"cookie", "beta=yes"}, {"x-user", "erin"}},
			[][2]string{{"x-user", "alice"}}, [][2]string{{"x-user", "bob"}}, [][2]string{{"x-user", "carol"}}, [][2]string{{"x-user", "\xff"}},
		),
		refused: []any{
			map[string]any{"http": []any{map[string]any{"route": []any{}}}},
			map[string]any{"http": []any{map[string]any{"route": []any{map[string]any{"subset": "a", "weight": -1}}}}},
			map[string]any{"http": []any{map[string]any{"route": []any{map[string]any{"subset": "a", "weight": 0}, map[string]any{"subset": "b"}}}}},
			map[string]any{"http": []any{map[string]any{"route": []any{map[string]any{"subset": "a", "destination": map[string]string{"subset": "b"}}}}}},
			map[string]any{"sticky": map[string]any{}},
			map[string]any{"routes": []any{}},
			canaryRegex(`a**`), canaryRegex(`(`), canaryRegex(`\8`), canaryRegex(`(?P<n-1>x)`), canaryRegex(`[z-a]`), canaryRegex(`\Qa)`),
			map[string]any{"http": []any{map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x": map[string]string{}}}}, "route": []any{map[string]any{"subset": "a"}}}}},
		},
		// Nested deeper than the Rust port's 120 levels (with the group
		// that anchors the pattern; a repeated item counts as a level).
		rustRefuses: []any{canaryRegex(`\p{Greek}`), canaryRegex(`[\PL]`), canaryRegex(strings.Repeat("(", 120) + "a" + strings.Repeat(")", 120)),
			canaryRegex("a" + strings.Repeat("(?i)*", 120))},
	},
	regexCase(map[string][]string{
		// Go's classes are ASCII; the crate's are Unicode.
		`\d+`: {"123", "\u0663"}, `\w+`: {"a_1", "\u00e9"}, `\s`: {" ", "\v"}, `[[:space:]]`: {"\v"}, `\bab\b`: {"ab"}, `.\B.`: {"ab", "a-"},
		// (?i) folds as Go's: K, k and the Kelvin sign, s and the long s.
		`(?i)k`: {"K", "\u212a"}, `(?i)\w`: {"\u017f"}, `(?i)[^k]`: {"K", "x"}, `(?i)(?-i)a`: {"A", "a"}, `(?i-i)a`: {"a", "A"}, `(?)a`: {"a"},
		// Literals in Go, errors or operators in the crate.
		`a\_b\!\<`: {"a_b!<"}, `a{`: {"a{"}, `a{,5}`: {"a{,5}"}, `[a[b]`: {"[", "b"}, `[a&&b]`: {"&", "a"}, `[a~~b]`: {"~"}, `[a-b-c]`: {"-", "c"},
		`\Qa.b\E`: {"a.b", "axb"}, `\101\x42\x{43}`: {"ABC"}, `(?P<n>a)(?<m>b)`: {"ab"}, `a(?i)*`: {"", "aa"}, `^*a`: {"a"},
		// The user's ) closes Go's anchoring group: b matches unanchored.
		`a|b)|(c`: {"a", "xb", "cx"},
		// Bytes that are not UTF-8 read as U+FFFD, one each.
		`.`: {"\xff", "\xe2\x82"}, `..`: {"\xe2\x82"}, `\x{FFFD}`: {"\xff"}, `[^\x00-\x{10FFFF}]|x`: {"x", "y"},
		`(a{10}){100}|y`: {"y"},
		// As deep as the Rust port goes, on the guest's stack.
		strings.Repeat("(", 119) + "a" + strings.Repeat(")", 119): {"a", "b"},
		"a" + strings.Repeat("(?i)*", 119):                        {"", "aa", "b"},
	}),
	{
		plugin: "fault",
		config: map[string]any{"abort": map[string]any{"httpStatus": 503}, "match": []any{map[string]any{"uri": map[string]string{"prefix": "/a"}}},
			"headers": map[string]any{"x-chaos": map[string]string{"regex": `on|(?i)yes`}}},
		reqs: canaryRequests([][2]string{{":path", "/a"}}, [][2]string{{":path", "/b"}, {"x-chaos", "YES"}}, [][2]string{{":path", "/b"}, {"x-chaos", "no"}}),
		refused: []any{
			map[string]any{"delay": map[string]any{"fixedDelay": "soon"}},
			map[string]any{"delay": map[string]any{"fixedDelay": "-1s"}},
			map[string]any{"delay": map[string]any{"fixedDelay": "1e3s"}},
			map[string]any{"delay": map[string]any{}},
			map[string]any{"abort": map[string]any{"httpStatus": 42}},
			map[string]any{"abort": map[string]any{}},
			map[string]any{"abort": map[string]any{"grpcStatus": "NOPE"}},
			map[string]any{"abort": map[string]any{"grpcStatus": "PERMIßION_DENIED"}},
			map[string]any{"abort": map[string]any{"httpStatus": 503, "grpcStatus": "INTERNAL"}},
			map[string]any{"abort": map[string]any{"httpStatus": 503, "percentage": map[string]any{"value": 101}}},
			map[string]any{"abort": map[string]any{"httpStatus": 503, "percentage": map[string]any{"val": 1}}},
			map[string]any{"abort": map[string]any{"httpStatus": 503, "percentage": "5"}},
			map[string]any{"delays": map[string]any{}},
			map[string]any{"headers": map[string]any{"x": nil}},
			map[string]any{"headers": map[string]any{"x": map[string]string{"regex": "a{2}{3}"}}},
		},
		metrics: []string{`sluice_fault_aborts_injected_total{plugin="fault"}`, `sluice_fault_delays_injected_total{plugin="fault"}`},
	},
	{
		plugin:  "fault",
		config:  map[string]any{"delay": map[string]any{"fixed_delay": "20ms", "percentage": 100}, "abort": map[string]any{"grpc_status": "unavailable", "percentage": map[string]any{"value": 100}}},
		reqs:    canaryRequests(nil),
		metrics: []string{`sluice_fault_aborts_injected_total{plugin="fault"}`, `sluice_fault_delays_injected_total{plugin="fault"}`},
	},
	{
		plugin:  "fault",
		config:  map[string]any{"delay": map[string]any{"fixedDelay": "1.5ms"}, "abort": map[string]any{"http_status": 500, "percentage": 0}},
		reqs:    canaryRequests(nil, [][2]string{{":path", "/x"}}),
		metrics: []string{`sluice_fault_aborts_injected_total{plugin="fault"}`, `sluice_fault_delays_injected_total{plugin="fault"}`},
	},
}

// Each built-in ported to Rust, on the real host, behaves as the Go
// plugin it replaces: the same headers both ways, local replies,
// properties, and the same configurations refused.
func TestRustPortsMatchGo(t *testing.T) {
	for _, c := range rustPortCases {
		rust := plugins.RustModule(c.plugin)
		if rust == nil {
			t.Fatalf("%s has no Rust module", c.plugin)
		}
		load := func(wasm []byte, config any) *filtertest.Filter {
			return filtertest.Load(t, wasm, filtertest.Options{Name: c.plugin, RootID: c.plugin, Config: config})
		}
		g, r := load(goref.Module(), c.config), load(rust, c.config)
		for i, req := range c.reqs {
			want, got := g.Do(req), r.Do(req)
			if !reflect.DeepEqual(answer(got), answer(want)) {
				t.Errorf("%s request %d:\nrust %+v\n  go %+v", c.plugin, i, got, want)
			}
		}
		for _, name := range c.metrics {
			want, wok := g.Metric(name)
			got, ok := r.Metric(name)
			if got != want || ok != wok {
				t.Errorf("%s: metric %s: rust %d (%v), go %d (%v)", c.plugin, name, got, ok, want, wok)
			}
		}
		for _, cfg := range c.rustRefuses {
			if _, err := filtertest.LoadErr(t, goref.Module(), filtertest.Options{RootID: c.plugin, Config: cfg}); err != nil {
				t.Errorf("%s: the Go plugin refused %v (fix the case): %v", c.plugin, cfg, err)
			}
			if _, err := filtertest.LoadErr(t, rust, filtertest.Options{RootID: c.plugin, Config: cfg}); err == nil {
				t.Errorf("%s: the Rust plugin accepted %v", c.plugin, cfg)
			}
		}
		for _, bad := range c.refused {
			if _, err := filtertest.LoadErr(t, goref.Module(), filtertest.Options{RootID: c.plugin, Config: bad}); err == nil {
				t.Errorf("%s: the Go plugin accepted %v (fix the case)", c.plugin, bad)
			}
			if _, err := filtertest.LoadErr(t, rust, filtertest.Options{RootID: c.plugin, Config: bad}); err == nil {
				t.Errorf("%s: the Rust plugin accepted %v", c.plugin, bad)
			}
		}
	}
}

// A few figures of the Rust add-header that the Go one cannot meet: it
// adds its headers from the first stream with the host skipping every
// other callback (it tells the host at configure time, where the Go SDK
// learns over the first stream), and an instance's linear memory stays
// far under 1 MiB over many streams.
func TestRustAddHeader(t *testing.T) {
	f := filtertest.LoadBuiltin(t, "add-header", map[string]any{"request_headers": map[string]string{"x-a": "1"}})
	req := filtertest.Request{Headers: [][2]string{{":path", "/"}}, Body: []byte("b"), ResponseBody: []byte("hello")}
	for i := 0; i < 3; i++ {
		before := f.Stats().Calls
		r := f.Do(req)
		// create with request headers, one call, after which the
		// crate frees the context itself: the bodies, response headers
		// (none configured), log, done and delete are answered by the
		// host.
		if n := f.Stats().Calls - before; n != 1 {
			t.Errorf("stream %d entered the guest %d times, want 1", i, n)
		}
		if v, _ := r.RequestHeader("x-a"); v != "1" {
			t.Errorf("stream %d: x-a = %q", i, v)
		}
		if _, ok := r.ResponseHeader("x-a"); ok {
			t.Errorf("stream %d: response got a request header", i)
		}
	}
	first := f.Stats().MemoryBytes
	for i := 0; i < 20000; i++ {
		f.Do(filtertest.Request{Headers: [][2]string{{":path", "/" + strings.Repeat("x", i%100)}}})
	}
	if m := f.Stats().MemoryBytes; m > first+64<<10 || m > 512<<10 {
		t.Errorf("linear memory after 20,000 streams: %d bytes (%d after the first 3), want at most 64 KiB more and <= 512 KiB", m, first)
	}
}

func ipRequests(addrs ...string) []filtertest.Request {
	var out []filtertest.Request
	for _, a := range addrs {
		out = append(out, filtertest.Request{Headers: [][2]string{{":path", "/"}}, ClientAddr: a})
	}
	return out
}

// netConn is the proxy's side of one TCP connection for a network filter.
type netConn struct {
	addr   string
	closed []hostabi.StreamType
}

func (c *netConn) Resume(hostabi.StreamType)  {}
func (c *netConn) Close(t hostabi.StreamType) { c.closed = append(c.closed, t) }
func (c *netConn) Property(path []string) ([]byte, bool) {
	if strings.Join(path, ".") == "source.address" && c.addr != "" {
		return []byte(c.addr), true
	}
	return nil, false
}
func (c *netConn) SetProperty([]string, []byte) error { return nil }

// ip-restriction on a TCP listener closes a refused connection, in Go and
// in Rust alike.
func TestRustIPRestrictionTCPMatchesGo(t *testing.T) {
	ctx := context.Background()
	config := map[string]any{"deny": []string{"192.0.2.0/24"}}
	for _, m := range []struct {
		lang string
		wasm []byte
	}{{"go", goref.Module()}, {"rust", plugins.RustModule("ip-restriction")}} {
		f := filtertest.Load(t, m.wasm, filtertest.Options{Name: "ip-restriction", RootID: "ip-restriction", Config: config})
		for _, tc := range []struct {
			addr   string
			action hostabi.Action
			closed bool
		}{
			{"198.51.100.7:4000", hostabi.Continue, false},
			{"192.0.2.9:4000", hostabi.Pause, true},
			{"[::ffff:192.0.2.9]:4000", hostabi.Pause, true},
			{"", hostabi.Pause, true},
		} {
			c := &netConn{addr: tc.addr}
			s, err := f.Plugin.NewNetworkStream(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			a, err := s.OnNewConnection()
			if err != nil {
				t.Fatal(err)
			}
			if a != tc.action {
				t.Errorf("%s %q: action %v, want %v", m.lang, tc.addr, a, tc.action)
			}
			if got := len(c.closed) == 1 && c.closed[0] == hostabi.StreamDownstream; got != tc.closed {
				t.Errorf("%s %q: closed %v, want downstream closed = %v", m.lang, tc.addr, c.closed, tc.closed)
			}
			if err := s.OnDone(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// corsRequests are, for each origin ("" for none), a preflight (with
// headers requested and private network access) and a GET with a
// response.
func corsRequests(origins ...string) []filtertest.Request {
	var out []filtertest.Request
	for _, o := range origins {
		pre := [][2]string{{":method", "OPTIONS"}, {":path", "/api"}, {"access-control-request-method", "POST"},
			{"access-control-request-headers", "x-a, \xffx-b"}, {"access-control-request-private-network", "true"}}
		get := [][2]string{{":method", "GET"}, {":path", "/api"}}
		if o != "" {
			pre = append(pre, [2]string{"origin", o})
			get = append(get, [2]string{"origin", o})
		}
		out = append(out, filtertest.Request{Headers: pre},
			filtertest.Request{Headers: get, ResponseHeaders: [][2]string{{":status", "200"}, {"vary", "accept"}, {"access-control-allow-origin", "upstream"}}},
			// Not a preflight: no Access-Control-Request-Method.
			filtertest.Request{Headers: append([][2]string{{":method", "OPTIONS"}}, get[1:]...)})
	}
	return out
}

// canaryRequests are GETs with these headers.
func canaryRequests(headers ...[][2]string) []filtertest.Request {
	var out []filtertest.Request
	for _, h := range headers {
		req := [][2]string{{":method", "GET"}, {":path", "/"}}
		for _, kv := range h {
			req = setHeader(req, kv[0], kv[1])
		}
		out = append(out, filtertest.Request{Headers: req})
	}
	return out
}

func setHeader(h [][2]string, k, v string) [][2]string {
	for i := range h {
		if h[i][0] == k {
			h[i][1] = v
			return h
		}
	}
	return append(h, [2]string{k, v})
}

// canaryRegex is a canary configuration matching header x on pattern.
func canaryRegex(pattern string) map[string]any {
	return map[string]any{"http": []any{map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x": map[string]string{"regex": pattern}}}},
		"route": []any{map[string]any{"subset": "a"}}}}}
}

// regexCase is a canary case that tests Go's regular expressions against
// the Rust port's: route i matches header x-p<i> on the i-th pattern (to
// subset p<i>), and each value is sent in that header alone, so the
// subset says whether the pattern matched it.
func regexCase(patterns map[string][]string) rustPortCase {
	var keys []string
	for p := range patterns {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	var routes []any
	var reqs []filtertest.Request
	for i, p := range keys {
		h := fmt.Sprintf("x-p%d", i)
		routes = append(routes, map[string]any{"match": []any{map[string]any{"headers": map[string]any{h: map[string]string{"regex": p}}}},
			"route": []any{map[string]any{"subset": fmt.Sprintf("p%d", i)}}})
		for _, v := range patterns[p] {
			reqs = append(reqs, canaryRequests([][2]string{{h, v}})...)
		}
	}
	routes = append(routes, map[string]any{"route": []any{map[string]any{"subset": "none"}}})
	return rustPortCase{plugin: "canary", config: map[string]any{"http": routes}, reqs: reqs}
}

func keyRequests(headers ...[][2]string) []filtertest.Request {
	var out []filtertest.Request
	for _, h := range headers {
		out = append(out, filtertest.Request{Headers: h})
	}
	return out
}
