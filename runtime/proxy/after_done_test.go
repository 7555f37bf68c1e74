package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// TestNoFilterCallbackAfterDone: a filter's OnDone is its last call on
// the stream, as Envoy's onDestroy, even when the stream ends while the
// request body is still being pumped through the chain on the upstream
// transport's goroutine. The client streams a large body slowly to an
// HTTP/2 upstream and the stream ends mid-body: the upstream answers at
// once without reading it (the client goes on sending after it has the
// answer), the route times out, or the client goes away. The recorder
// sees no callback after OnDone. (An HTTP/1.1 upstream's answer is read
// only once the request has gone, when the pump has stopped.)
func TestNoFilterCallbackAfterDone(t *testing.T) {
	up := httptest.NewServer(h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/early" {
			<-r.Context().Done() // never answers
			return
		}
		w.Header().Set("content-length", "2")
		w.Write([]byte("ok"))
	}), &http2.Server{}))
	t.Cleanup(up.Close)
	rec := &recorders{name: "rec", mk: func(r *recorder) filter.HTTPFilter { return r }}
	decl, _, m := declarePlugins([]filter.Factory{rec})
	addr, _ := startProxyManager(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "timeout"
match = { path_prefix = "/timeout" }
plugins = ["rec"]
timeout = "50ms"
backends = [ { cluster = "up" } ]
[[routes]]
name = "r"
match = { path_prefix = "/" }
plugins = ["rec"]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
protocol = "h2c"
endpoints = ["`+up.Listener.Addr().String()+`"]
`, m)
	chunk := bytes.Repeat([]byte{'b'}, 64<<10)
	for _, tc := range []struct {
		path   string
		status int  // the response the client waits for; 0: none
		hangUp bool // the client goes away mid-body
	}{
		{"/early", 200, false},
		{"/timeout", 504, false},
		{"/gone", 0, true},
	} {
		t.Run(tc.path[1:], func(t *testing.T) {
			for i := range 5 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\ncontent-length: %d\r\n\r\n", tc.path, 8<<20)
				c.Write(chunk)
				if tc.status != 0 {
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != tc.status {
						t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, tc.status)
					}
				}
				if !tc.hangUp {
					// The client goes on with its body after the answer,
					// until the proxy stops reading it.
					for range 32 {
						c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
						if _, err := c.Write(chunk); err != nil {
							break
						}
					}
				}
				c.Close()
				r := rec.last(t)
				var calls []string
				for deadline := time.Now().Add(5 * time.Second); !slices.Contains(calls, "done"); time.Sleep(2 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("request %d: the filter's OnDone did not come: calls %v", i, calls)
					}
					calls, _, _ = r.record()
				}
				// Whatever the pump still had in hand has had its chance
				// (the client is gone, so its reads have ended).
				time.Sleep(20 * time.Millisecond)
				calls, _, _ = r.record()
				if k := slices.Index(calls, "done"); k != len(calls)-1 {
					t.Fatalf("request %d: callbacks after OnDone: %v", i, calls[k:])
				}
			}
		})
	}
}
