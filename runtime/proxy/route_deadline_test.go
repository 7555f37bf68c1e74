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
	timer *streamTimer
}

func (f *lateTimer) OnRequestHeaders(s filter.Stream, eos bool) filter.Status {
	f.timer = &s.Info().Cluster.(*activeStream).timer
	f.timer.mu.Lock() // the timer's callback waits for it
	return f.recorder.OnRequestHeaders(s, eos)
}

func (f *lateTimer) OnLog(s filter.Stream) {
	f.recorder.OnLog(s)
	if f.timer != nil {
		f.timer.mu.Unlock()
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

// TestRouteTimeoutOnAReusedTimer: an active stream's timer outlives its
// stream and is left running when the next stream's deadline is no
// earlier than the one it is due for. A stream whose route timeout is
// shorter than the timer's pending run (a quick request on a route with
// a long timeout came before it, on the same connection and so usually
// the same active stream) still ends at its own deadline: the 504 comes
// long before the long timeout.
func TestRouteTimeoutOnAReusedTimer(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	addr, _ := startProxy(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[routes]]
name = "slow"
match = { path_prefix = "/slow" }
timeout = "100ms"
backends = [ { cluster = "up" } ]
[[routes]]
name = "fast"
match = { path_prefix = "/" }
timeout = "30s"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.Listener.Addr().String()+`"]
`)
	rc := dialRaw(t, addr)
	for round := range 3 {
		if resp, body := rc.do("GET", "/fast", nil); resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Fatalf("round %d: quick request: %d %q", round, resp.StatusCode, body)
		}
		start := time.Now()
		resp, body := rc.do("GET", "/slow", nil)
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("round %d: slow request: %d %q, want 504", round, resp.StatusCode, body)
		}
		// The raw client gives up after 10 s; the fast route's 30 s
		// timeout would not answer before that.
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("round %d: the 100 ms route timeout answered after %v", round, d)
		}
	}
}

// timerGrabber is a test filter that keeps its stream's active stream, to
// look at its timer once the stream is over. It is no filter.Finisher, so
// its stream's active stream is not reused.
type timerGrabber struct {
	*recorder
	got chan *activeStream
}

func (f *timerGrabber) OnRequestHeaders(s filter.Stream, eos bool) filter.Status {
	f.got <- s.Info().Cluster.(*activeStream)
	return f.recorder.OnRequestHeaders(s, eos)
}

// TestDroppedStreamStopsItsTimer: an active stream that is not reused is
// left to the collector with its snapshot and filters; its timer, which
// runs on between streams, is stopped then, or it would keep all that
// for as long as the stream's timeouts (here 30 s).
func TestDroppedStreamStopsItsTimer(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(up.Close)
	got := make(chan *activeStream, 1)
	grab := &recorders{name: "grab"}
	grab.mk = func(r *recorder) filter.HTTPFilter { return &timerGrabber{recorder: r, got: got} }
	decl, _, m := declarePlugins([]filter.Factory{grab})
	addr, _ := startProxyManager(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "r"
plugins = ["grab"]
timeout = "30s"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.Listener.Addr().String()+`"]
`, m)
	rc := dialRaw(t, addr)
	if resp, body := rc.do("GET", "/", nil); resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	x := <-got
	ticking := func() bool {
		x.timer.mu.Lock()
		defer x.timer.mu.Unlock()
		return x.timer.ticking
	}
	for deadline := time.Now().Add(5 * time.Second); ticking(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the timer of an active stream that was not reused still runs")
		}
	}
}
