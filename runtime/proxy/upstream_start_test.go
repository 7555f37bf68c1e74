package proxy

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// The upstream timing starts when the try goes upstream. On a route
// without filters the stream's start is read for it (nothing between
// waits); a route whose filter waits (here for its instance, as a Wasm
// filter may wait for one) must read the clock again after it: its
// upstream_service_time leaves the filter's wait out. The bound holds
// whatever the machine's speed (a sleep lasts at least its time).
func TestUpstreamTimeAfterFilters(t *testing.T) {
	const wait = 100 * time.Millisecond
	upAddr := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	decl, names, facs := declarePlugins([]filter.Factory{factory{"slow", func() filter.HTTPFilter {
		time.Sleep(wait)
		return &upperCase{}
	}}})
	addr, logs := startProxyFilters(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "filtered"
match = { path_prefix = "/filtered" }
plugins = [`+names+`]
backends = [ { cluster = "up" } ]
[[routes]]
name = "plain"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+upAddr+`"]
`, facs)
	rc := dialRaw(t, addr)
	for _, path := range []string{"/filtered", "/plain"} {
		if resp, b := rc.do("GET", path, nil); resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, b)
		}
	}
	lines := waitLines(t, logs, 2)
	for i, line := range lines {
		f := line.ContextMap()
		total, _ := f["duration"].(time.Duration)
		up, _ := f["upstream_service_time"].(time.Duration)
		if up <= 0 || up > total {
			t.Errorf("%s: duration %v, upstream_service_time %v: want 0 < upstream <= total", f["path"], total, up)
		}
		if i == 0 && total-up < wait {
			t.Errorf("%s: duration %v, upstream_service_time %v: the filter's wait of %v counted as the upstream's", f["path"], total, up, wait)
		}
	}
}
