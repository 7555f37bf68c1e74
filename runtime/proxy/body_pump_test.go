package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// trailerStamp passes bodies on as they come (so a request body streams)
// and adds a field to the request's trailers.
type trailerStamp struct {
	bodyJudge
	sawEOS atomic.Bool
	first  chan struct{} // closed at the first body callback
	once   sync.Once
}

func (f *trailerStamp) OnRequestHeaders(filter.Stream, bool) filter.Status { return filter.Continue }
func (f *trailerStamp) OnRequestBody(s filter.Stream, b *filter.Body, eos bool) filter.Status {
	f.once.Do(func() { close(f.first) })
	if eos {
		f.sawEOS.Store(true)
	}
	return filter.Continue
}
func (f *trailerStamp) OnRequestTrailers(s filter.Stream) filter.Status {
	s.RequestTrailers().Set("x-stamped", "yes")
	return filter.Continue
}

// TestStreamedRequestBodyTrailersThroughChain: a request body that streams
// (no filter holds it) and ends with trailers runs the trailers callbacks,
// and what they leave is what the upstream gets; the last body callback
// does not see end of stream (the trailers end it).
func TestStreamedRequestBodyTrailersThroughChain(t *testing.T) {
	var got atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b) + "|" + r.Trailer.Get("X-Client") + "|" + r.Trailer.Get("X-Stamped"))
		w.Write([]byte("ok"))
	}))
	defer up.Close()
	stamp := &trailerStamp{first: make(chan struct{})}
	srv := serveProxy(t, up.URL, []factory{{"stamp", func() filter.HTTPFilter { return stamp }}})

	// The rest of the body is sent only once the first piece went
	// through the chain: the body streams.
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTrailer: X-Client\r\nTransfer-Encoding: chunked\r\n\r\n4\r\none \r\n")
	select {
	case <-stamp.first:
	case <-time.After(10 * time.Second):
		t.Fatal("the first piece of the body never reached the filter")
	}
	io.WriteString(c, "9\r\ntwo three\r\n0\r\nX-Client: 1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if v, _ := got.Load().(string); resp.StatusCode != 200 || v != "one two three|1|yes" {
		t.Fatalf("status %d, upstream saw %q; want the body, the client's trailer and the filter's", resp.StatusCode, v)
	}
	if stamp.sawEOS.Load() {
		t.Error("a body callback saw end of stream although trailers followed")
	}
}
