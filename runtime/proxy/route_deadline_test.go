package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// lateTimer is a test filter that keeps its stream's timer from running
// from the request's headers to the stream's log callback, as a busy
// machine can leave a due timer's callback unscheduled: the route
// deadline passes by the clock while the stream's context has not ended.
type lateTimer struct {
	*recorder
	idle *streamIdle
}

func (f *lateTimer) OnRequestHeaders(s filter.Stream, eos bool) filter.Status {
	f.idle = &s.Info().Cluster.(*activeStream).idleState
	f.idle.mu.Lock() // the timer's callback waits for it
	return f.recorder.OnRequestHeaders(s, eos)
}

func (f *lateTimer) OnLog(s filter.Stream) {
	f.recorder.OnLog(s)
	if f.idle != nil {
		f.idle.mu.Unlock()
	}
}

// TestResetAfterRouteDeadlineIsTimeout: an upstream that resets the
// stream just after the route's deadline (a gRPC server given the
// client's grpc-timeout, which it counts from a moment later than the
// proxy) is answered as the route timeout, 504 or gRPC DEADLINE_EXCEEDED,
// even when the reset is read before the stream's timer has run; not as
// an upstream reset (502, UNAVAILABLE), which a client may retry.
func TestResetAfterRouteDeadlineIsTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	up := httptest.NewServer(h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The proxy's deadline is timeout after it began the stream,
		// before this request reached us.
		time.Sleep(timeout + 30*time.Millisecond)
		panic(http.ErrAbortHandler) // RST_STREAM
	}), &http2.Server{}))
	t.Cleanup(up.Close)
	late := &recorders{name: "late"}
	late.mk = func(r *recorder) filter.HTTPFilter { return &lateTimer{recorder: r} }
	decl, _, m := declarePlugins([]filter.Factory{late})
	addr, _ := startProxyManager(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "grpc"
match = { path_prefix = "/svc." }
plugins = ["late"]
timeout = "30s"
backends = [ { cluster = "up" } ]
[[routes]]
name = "plain"
match = { path_prefix = "/" }
plugins = ["late"]
timeout = "100ms"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
protocol = "h2c"
endpoints = ["`+up.Listener.Addr().String()+`"]
`, m)

	rc := dialRaw(t, addr)
	resp, body := rc.do("GET", "/plain", nil)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("plain route: %d %q, want 504 (the route timeout)", resp.StatusCode, body)
	}

	req := "POST /svc.Test/Call HTTP/1.1\r\nHost: x\r\ncontent-type: application/grpc\r\ngrpc-timeout: 100m\r\ncontent-length: 5\r\n\r\n\x00\x00\x00\x00\x00"
	if _, err := rc.c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("grpc-status"); got != "4" {
		t.Errorf("gRPC call: grpc-status %q (%s), want 4 DEADLINE_EXCEEDED", got, resp.Header.Get("grpc-message"))
	}
}
