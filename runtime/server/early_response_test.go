package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// TestEarlyResponseWhileBodyStreams: an h2c upstream that answers before
// the request body ends, on a route with a Wasm filter. The stream's
// response is done (and its access-log figures read) while the upstream's
// body writer still reads the rest of the client's body through the
// filter chain: that late read must not touch what the finished stream's
// log reads. Under -race this reported a data race on the byte count.
// Nor may it call the filter after its OnDone (its stream context is
// gone, and the filter object may serve another stream).
func TestEarlyResponseWhileBodyStreams(t *testing.T) {
	up := httptest.NewUnstartedServer(h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early")
	}), &http2.Server{}))
	up.Start()
	t.Cleanup(up.Close)
	// Not a built-in: those declare the body callbacks they skip, and the
	// body then goes upstream without passing the filter chain.
	guest := filepath.Join(t.TempDir(), "header.wasm")
	if err := os.WriteFile(guest, headerRust(t), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, baseConfig(`
[[plugins]]
name = "hello"
wasm = "`+guest+`"
config = { header = "x-hello", value = "rust" }

[[routes]]
name = "r"
plugins = ["hello"]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
protocol = "h2c"
endpoints = ["`+up.Listener.Addr().String()+`"]
`))
	c := h2cClient()
	t.Cleanup(c.CloseIdleConnections)
	for range 20 {
		pr, pw := io.Pipe()
		go pw.Write([]byte("first part"))
		resp, err := c.Post(ts.url("/up"), "text/plain", pr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "early" {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
		// The rest of the body, and its end, after the response.
		pw.Write([]byte("the rest"))
		pw.Close()
	}
	// The filter got no body callback after its OnDone: hostabi answers
	// one with an error ("stream already done"), which the filter logs.
	c.CloseIdleConnections()
	if n := ts.logs.FilterMessage("wasm filter callback failed").Len(); n != 0 {
		t.Errorf("%d Wasm filter callbacks after the stream's end: %v", n, ts.logs.FilterMessage("wasm filter callback failed").All()[0].ContextMap())
	}
}
