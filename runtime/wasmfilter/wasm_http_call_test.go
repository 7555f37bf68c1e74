package wasmfilter

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

func TestWasmHTTPCaller(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/slow" {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Trailer", "X-Done")
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-T"))
		w.WriteHeader(201)
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-K")+" "+string(b))
		w.Header().Set("X-Done", "yes")
	}))
	defer srv.Close()
	m, err := upstream.NewManager([]config.Cluster{{Name: "authz", Endpoints: []string{srv.Listener.Addr().String()}}}, stats.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := &WasmHTTPCaller{Lookup: ClusterCallsForTest(m)}
	call := func(req hostabi.HTTPCallRequest) (hostabi.HTTPCallResponse, error) {
		type result struct {
			r   hostabi.HTTPCallResponse
			err error
		}
		ch := make(chan result, 1)
		if err := c.HTTPCall(context.Background(), req, func(r hostabi.HTTPCallResponse, err error) { ch <- result{r, err} }); err != nil {
			return hostabi.HTTPCallResponse{}, err
		}
		select {
		case res := <-ch:
			return res.r, res.err
		case <-time.After(10 * time.Second):
			t.Fatal("no reply")
		}
		return hostabi.HTTPCallResponse{}, nil
	}
	resp, err := call(hostabi.HTTPCallRequest{Cluster: "authz", Body: []byte("payload"), Timeout: 5 * time.Second,
		Headers:  [][2]string{{":method", "POST"}, {":path", "/check?a=1"}, {":authority", "authz.local"}, {"x-k", "v"}},
		Trailers: [][2]string{{"x-t", "tv"}}})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != "POST /check?a=1 v payload" || resp.Headers[0] != [2]string{":status", "201"} {
		t.Errorf("reply %q %v", resp.Body, resp.Headers)
	}
	hdr := map[string]string{}
	for _, kv := range resp.Headers {
		hdr[kv[0]] = kv[1]
	}
	if hdr["x-host"] != "authz.local" || hdr["x-req-trailer"] != "tv" {
		t.Errorf("headers %v", resp.Headers)
	}
	if len(resp.Trailers) != 1 || resp.Trailers[0] != [2]string{"x-done", "yes"} {
		t.Errorf("trailers %v", resp.Trailers)
	}
	if _, err := call(hostabi.HTTPCallRequest{Cluster: "nope", Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "a"}}}); !errors.Is(err, hostabi.ErrUnknownCluster) {
		t.Errorf("unknown cluster: %v", err)
	}
	_, err = call(hostabi.HTTPCallRequest{Cluster: "authz", Timeout: 50 * time.Millisecond,
		Headers: [][2]string{{":method", "GET"}, {":path", "/slow"}, {":authority", "a"}}})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("timeout: %v", err)
	}
}

// TestWasmHTTPCallReplyLimit: a reply body up to MaxResponseBytes reaches
// the filter; one byte more fails the call instead of growing without
// bound.
func TestWasmHTTPCallReplyLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "12345")
	}))
	defer srv.Close()
	m, err := upstream.NewManager([]config.Cluster{{Name: "c", Endpoints: []string{srv.Listener.Addr().String()}}}, stats.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tt := range []struct {
		limit   int64
		wantErr bool
	}{{5, false}, {4, true}} {
		c := &WasmHTTPCaller{Lookup: ClusterCallsForTest(m), MaxResponseBytes: tt.limit}
		type result struct {
			r   hostabi.HTTPCallResponse
			err error
		}
		ch := make(chan result, 1)
		err := c.HTTPCall(context.Background(), hostabi.HTTPCallRequest{Cluster: "c", Timeout: 5 * time.Second,
			Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "a"}}},
			func(r hostabi.HTTPCallResponse, err error) { ch <- result{r, err} })
		if err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-ch:
			if tt.wantErr {
				if res.err == nil || !strings.Contains(res.err.Error(), "over 4 bytes") {
					t.Errorf("limit %d: %q %v, want the limit's error", tt.limit, res.r.Body, res.err)
				}
			} else if res.err != nil || string(res.r.Body) != "12345" {
				t.Errorf("limit %d: %q %v", tt.limit, res.r.Body, res.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no reply")
		}
	}
}
