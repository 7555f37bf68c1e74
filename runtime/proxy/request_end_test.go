package proxy

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// heldLog is a recorder whose OnLog waits for the test: the stream then
// ends (and closes its upstream response) only after the client has its
// response and the test has looked at the cluster.
type heldLog struct {
	*recorder
	release chan struct{}
}

func (h heldLog) OnLog(s filter.Stream) {
	select {
	case <-h.release:
	case <-time.After(10 * time.Second):
	}
	h.recorder.OnLog(s)
}

// heldLogHeaderOnly is heldLog on a filter that skips body callbacks, so
// the response body goes untouched (nextUntouched) rather than through
// the pump.
type heldLogHeaderOnly struct{ heldLog }

func (heldLogHeaderOnly) SkippedCallbacks() filter.Callbacks {
	return filter.BodyCallbacks(filter.Request) | filter.BodyCallbacks(filter.Response)
}

// TestRequestEndsBeforeTheClientHasIt: a request stops counting against
// its cluster (max_requests, least_request's endpoint count) once the
// upstream response is complete, before the client has the last byte, as
// Envoy's: while the first request's stream still runs (its filter's log
// callback), the client has the whole response, the endpoint counts 0
// active requests, and with max_requests = 1 the client's next request,
// sent at once on another connection, is served, not refused with a 503.
// Then back-to-back requests on a route without filters, alternating two
// connections so that nothing orders one stream's end before the next
// request: none is refused.
func TestRequestEndsBeforeTheClientHasIt(t *testing.T) {
	up := skipUpstream(t)
	release := make(chan struct{})
	var gates = []struct {
		name string
		mk   func(r *recorder) filter.HTTPFilter
	}{
		{"body", func(r *recorder) filter.HTTPFilter { return heldLog{r, release} }},
		{"hdr", func(r *recorder) filter.HTTPFilter { return heldLogHeaderOnly{heldLog{r, release}} }},
	}
	var facs []filter.Factory
	for _, g := range gates {
		facs = append(facs, &recorders{name: g.name, mk: g.mk})
	}
	decl, _, m := declarePlugins(facs)
	addr, cm := startProxyManager(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "body"
match = { path_prefix = "/body" }
plugins = ["body"]
backends = [ { cluster = "up" } ]
[[routes]]
name = "hdr"
match = { path_prefix = "/hdr" }
plugins = ["hdr"]
backends = [ { cluster = "up" } ]
[[routes]]
name = "plain"
match = { path_prefix = "/p" }
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up+`"]
lb = "least_request"
limits = { max_requests = 1 }
`, m)
	cl := cm.snap.Load().Upstream.Cluster("up")
	for _, g := range gates {
		for _, path := range []string{"/big", "/chunked"} {
			t.Run(g.name+path, func(t *testing.T) {
				// The client reads the whole response while the stream
				// runs on, held in its filter's log callback.
				resp, body := dialRaw(t, addr).do("GET", "/"+g.name+path, nil)
				if resp.StatusCode != 200 || len(body) < 100000 {
					t.Fatalf("first request: %d, %d bytes", resp.StatusCode, len(body))
				}
				if n := cl.Status().Endpoints[0].ActiveRequests; n != 0 {
					t.Errorf("the endpoint counts %d active requests once the client has the response, want 0", n)
				}
				resp, body = dialRaw(t, addr).do("GET", "/p/next", nil)
				if resp.StatusCode != 200 {
					t.Errorf("the next request: %d %q, want 200 (max_requests = 1 and the first response is complete)", resp.StatusCode, bytes.TrimSpace(body[:min(len(body), 80)]))
				}
				release <- struct{}{} // the first stream ends
				if n := cl.Status().ActiveRequests; n != 0 {
					t.Errorf("%d requests in flight after both, want 0", n)
				}
			})
		}
	}
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for i := range 200 {
		c := a
		if i%2 == 1 {
			c = b
		}
		if resp, body := c.do("GET", "/p/big", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 80)])))
		}
	}
}
