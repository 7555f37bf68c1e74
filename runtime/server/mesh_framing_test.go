package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A small answer of known length crosses both sidecars (whose mesh header
// filters make a filter chain on each side) with its Content-Length, in
// one piece: not turned into a chunked stream flushed write by write.
func TestMeshKeepsContentLength(t *testing.T) {
	payload := strings.Repeat("x", 1024)
	m := startTwoSidecarsApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1024")
		w.Write([]byte(payload))
	}, "", "")
	c := &http.Client{Timeout: 10 * time.Second}
	for i := range 3 { // the first request dials; later ones reuse the peer connection
		req := mustReq(t, "GET", m.outboundURL("/"), nil)
		req.Host = "payments"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != payload {
			t.Fatalf("request %d: status %d, %d bytes", i, resp.StatusCode, len(body))
		}
		if resp.ContentLength != 1024 || len(resp.TransferEncoding) > 0 {
			t.Fatalf("request %d: Content-Length %d, Transfer-Encoding %v; want 1024 and none", i, resp.ContentLength, resp.TransferEncoding)
		}
	}
}
