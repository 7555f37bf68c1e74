package realhost

import (
	"reflect"
	"strings"
	"testing"

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
