package realhost

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
)

// rustPortCases are the requests each built-in ported to Rust must answer
// exactly as its Go original does. A plugin's port adds its cases here.
var rustPortCases = []struct {
	plugin string
	config any
	reqs   []filtertest.Request
	// refused are configurations both must refuse.
	refused []any
}{
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
	{plugin: "key-auth", config: map[string]any{"realm": `a"b`, "key_in_header": false},
		reqs: keyRequests([][2]string{{":method", "GET"}, {":path", "/"}, {"apikey", "k1"}})},
	{plugin: "add-header", config: map[string]any{"Request_Headers": map[string]string{"x-a": "1"}},
		reqs: []filtertest.Request{{Headers: [][2]string{{":path", "/"}}}}},
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
		g, r := load(plugins.Module(), c.config), load(rust, c.config)
		for i, req := range c.reqs {
			want, got := g.Do(req), r.Do(req)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s request %d:\nrust %+v\n  go %+v", c.plugin, i, got, want)
			}
		}
		for _, bad := range c.refused {
			if _, err := filtertest.LoadErr(t, plugins.Module(), filtertest.Options{RootID: c.plugin, Config: bad}); err == nil {
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
		// create, request headers, done, delete: the bodies, response
		// headers (none configured) and log are answered by the host.
		if n := f.Stats().Calls - before; n != 4 {
			t.Errorf("stream %d entered the guest %d times, want 4", i, n)
		}
		if v, _ := r.RequestHeader("x-a"); v != "1" {
			t.Errorf("stream %d: x-a = %q", i, v)
		}
		if _, ok := r.ResponseHeader("x-a"); ok {
			t.Errorf("stream %d: response got a request header", i)
		}
	}
	for i := 0; i < 20000; i++ {
		f.Do(filtertest.Request{Headers: [][2]string{{":path", "/" + strings.Repeat("x", i%100)}}})
	}
	if m := f.Stats().MemoryBytes; m > 256<<10 {
		t.Errorf("linear memory after 20,000 streams: %d bytes, want <= 256 KiB", m)
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
	}{{"go", plugins.Module()}, {"rust", plugins.RustModule("ip-restriction")}} {
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

func keyRequests(headers ...[][2]string) []filtertest.Request {
	var out []filtertest.Request
	for _, h := range headers {
		out = append(out, filtertest.Request{Headers: h})
	}
	return out
}
