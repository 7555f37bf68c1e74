package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// A body that comes whole leaves in the write that ends the stream
// (respond's last piece), except where end must come on its own: the
// trailers an HTTP/2 upstream sends after a Content-Length body, and a
// streaming response (a body of unknown length, which one whole write
// would give a Content-Length). What the client gets is what it got from a write and
// an end: the body, its framing and the trailers.
func TestLastWriteEndsStream(t *testing.T) {
	up := httptest.NewServer(h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/trailers":
			w.Header().Set("trailer", "x-t")
			w.Header().Set("content-length", "2")
			w.Write([]byte("ok"))
			w.Header().Set("x-t", "1")
		case "/chunked": // no length: the client's response is chunked
			w.Write([]byte("ok"))
			w.(http.Flusher).Flush()
		case "/stream":
			w.Header().Set("content-type", "text/event-stream")
			w.Header().Set("content-length", "9")
			w.Write([]byte("data: x\n\n"))
		default:
			w.Header().Set("content-length", "2")
			w.Write([]byte("ok"))
		}
	}), &http2.Server{}))
	t.Cleanup(up.Close)
	addr, logs := startProxy(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[routes]]
name = "r"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
protocol = "h2c"
endpoints = ["`+up.Listener.Addr().String()+`"]
`)
	rc := dialRaw(t, addr)
	for _, tc := range []struct{ path, body, framing, trailer string }{
		{"/plain", "ok", "length 2", ""},
		{"/trailers", "ok", "chunked", "1"},
		{"/stream", "data: x\n\n", "length 9", ""},
		{"/chunked", "ok", "chunked", ""},
	} {
		resp, b := rc.do("GET", tc.path, nil)
		framing := "length " + resp.Header.Get("content-length")
		if len(resp.TransferEncoding) > 0 {
			framing = strings.Join(resp.TransferEncoding, ",")
		}
		if string(b) != tc.body || framing != tc.framing || resp.Trailer.Get("x-t") != tc.trailer {
			t.Errorf("%s: body %q, framing %q, trailer %q; want %q, %q, %q", tc.path, b, framing, resp.Trailer.Get("x-t"), tc.body, tc.framing, tc.trailer)
		}
	}
	for i, line := range waitLines(t, logs, 4) {
		f := line.ContextMap()
		if f["bytes_sent"] != int64([]int{2, 2, 9, 2}[i]) || f["response_code_details"] != "via_upstream" {
			t.Errorf("%s: bytes_sent %v, details %v", f["path"], f["bytes_sent"], f["response_code_details"])
		}
	}
}
