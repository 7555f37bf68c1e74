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
// the stream, as Envoy's onDestroy, even when the upstream answers (and
// the stream ends) while the request body is still being pumped through
// the chain on the upstream transport's goroutine: the client streams a
// large body slowly, the upstream answers at once without reading it,
// and the client goes on sending after it has the response. For each
// upstream protocol, the recorder sees no callback after OnDone.
func TestNoFilterCallbackAfterDone(t *testing.T) {
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-length", "2")
		w.Write([]byte("ok"))
	})
	// An HTTP/1.1 upstream's answer is read only once the request has
	// gone (the body pump has stopped), so only h2c has this shape.
	for _, proto := range []string{"h2c"} {
		t.Run(proto, func(t *testing.T) {
			var up *httptest.Server
			protoLine := ""
			if proto == "h2c" {
				up = httptest.NewServer(h2c.NewHandler(answer, &http2.Server{}))
				protoLine = `protocol = "h2c"`
			} else {
				up = httptest.NewServer(answer)
			}
			t.Cleanup(up.Close)
			rec := &recorders{name: "rec", mk: func(r *recorder) filter.HTTPFilter { return r }}
			decl, _, m := declarePlugins([]filter.Factory{rec})
			addr, _ := startProxyManager(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "r"
match = { path_prefix = "/" }
plugins = ["rec"]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
`+protoLine+`
endpoints = ["`+up.Listener.Addr().String()+`"]
`, m)
			for i := range 5 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				const size = 8 << 20
				fmt.Fprintf(c, "POST /up/%d HTTP/1.1\r\nHost: x\r\ncontent-length: %d\r\n\r\n", i, size)
				chunk := bytes.Repeat([]byte{'b'}, 64<<10)
				c.Write(chunk)
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				// The client goes on with its body after the answer, until
				// the proxy stops reading it.
				for range 32 {
					c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
					if _, err := c.Write(chunk); err != nil {
						break
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
