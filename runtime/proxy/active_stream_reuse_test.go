package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/http1"
)

// TestReusedActiveStreamCarriesNothing: on one keep-alive connection, the
// active stream of each plain request is recycled after it with nothing of
// the request left in it (and the next takes it from the pool), and each
// request's response and access-log line are its own: a routed request,
// a 404 (no route, no upstream), a request with its own x-request-id and
// a body (read to its end upstream), another plain one; then one that
// the stream idle timeout ends (its stream is not reused: its context
// ended), and one after it that must not see that timeout.
func TestReusedActiveStreamCarriesNothing(t *testing.T) {
	upAddr := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/idle" {
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("x-seen-request-id", r.Header.Get("x-request-id"))
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok %q", b)
	})
	addr, logs := startProxy(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
[[routes]]
name = "idle"
match = { path_prefix = "/idle" }
stream_idle_timeout = "50ms"
backends = [ { cluster = "up" } ]
[[routes]]
name = "r"
match = { path_prefix = "/r" }
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+upAddr+`"]
`)

	var mu sync.Mutex
	var recycled []*activeStream
	testHookRecycled = func(x *activeStream) {
		if err := checkRecycled(reflect.ValueOf(x).Elem(), "activeStream"); err != nil {
			t.Error(err)
		}
		mu.Lock()
		recycled = append(recycled, x)
		mu.Unlock()
	}
	t.Cleanup(func() { testHookRecycled = nil })
	// waitRecycled waits (boundedly) for n recycled streams: a stream is
	// recycled just after its access-log line and response.
	waitRecycled := func(n int) []*activeStream {
		t.Helper()
		var got []*activeStream
		waitCount(t, "active streams recycled", n, func() int {
			mu.Lock()
			defer mu.Unlock()
			got = append(got[:0], recycled...)
			return len(got)
		})
		return got
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	bodies := map[*http.Response]string{}
	do := func(path, requestID, body string) *http.Response {
		t.Helper()
		req := "GET " + path + " HTTP/1.1\r\nHost: reuse.test\r\n"
		if requestID != "" {
			req += "x-request-id: " + requestID + "\r\n"
		}
		if body != "" {
			req = "POST" + req[3:] + fmt.Sprintf("content-length: %d\r\n", len(body))
		}
		if _, err := c.Write([]byte(req + "\r\n" + body)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies[resp] = string(b)
		return resp
	}

	r1 := do("/r/1", "", "")
	r2 := do("/nowhere", "", "")
	r3 := do("/r/3", "client-id", "hello")
	r4 := do("/r/4", "", "")
	waitRecycled(4)
	r5 := do("/idle", "", "")
	r6 := do("/r/6", "", "")
	waitRecycled(5) // not the one the idle timeout ended

	if r1.StatusCode != 200 || r2.StatusCode != 404 || r3.StatusCode != 200 || r4.StatusCode != 200 || r5.StatusCode != 504 || r6.StatusCode != 200 {
		t.Fatalf("statuses %d %d %d %d %d %d, want 200 404 200 200 504 200", r1.StatusCode, r2.StatusCode, r3.StatusCode, r4.StatusCode, r5.StatusCode, r6.StatusCode)
	}
	id1, id2 := r1.Header.Get("x-seen-request-id"), r2.Header.Get("x-request-id")
	if id1 == "" || id2 == "" || id1 == id2 {
		t.Errorf("request ids %q and %q: want two of their own", id1, id2)
	}
	if got := r3.Header.Get("x-seen-request-id"); got != "client-id" {
		t.Errorf("the client's request id reached the upstream as %q", got)
	}
	if bodies[r3] != `ok "hello"` || bodies[r4] != `ok ""` || bodies[r6] != `ok ""` {
		t.Errorf("upstream saw bodies %s, %s and %s, want \"hello\" and none", bodies[r3], bodies[r4], bodies[r6])
	}

	lines := waitLines(t, logs, 6)
	want := []map[string]any{
		{"path": "/r/1", "route_name": "r", "upstream_cluster": "up", "upstream_host": upAddr, "request_id": id1, "response_code_details": "via_upstream"},
		{"path": "/nowhere", "route_name": "", "upstream_cluster": "", "upstream_host": "", "request_id": id2, "response_code_details": "route_not_found", "bytes_received": int64(0)},
		{"path": "/r/3", "route_name": "r", "request_id": "client-id", "response_flags": "-", "bytes_received": int64(5)},
		{"path": "/r/4", "route_name": "r", "response_flags": "-", "bytes_received": int64(0)},
		{"path": "/idle", "route_name": "idle", "response_code": int64(504), "response_flags": "SI"},
		{"path": "/r/6", "route_name": "r", "response_code": int64(200), "response_code_details": "via_upstream", "response_flags": "-"},
	}
	for i, w := range want {
		f := lines[i].ContextMap()
		for k, v := range w {
			if f[k] != v {
				t.Errorf("line %d: %s = %v, want %v", i+1, k, f[k], v)
			}
		}
		if i == 1 {
			if _, ok := f["upstream_service_time"]; ok {
				t.Errorf("the 404's line has an upstream_service_time: %v", f)
			}
		}
	}
}

// waitCount waits (boundedly) for count to reach n, and fails the test
// when it does not or goes past it.
func waitCount(t *testing.T, what string, n int, count func() int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := count()
		if got >= n || time.Now().After(deadline) {
			if got != n {
				t.Fatalf("%d %s, want %d", got, what, n)
			}
			return
		}
	}
}

// checkRecycled reports a field of a recycled active stream that still
// holds something: every field must be zero except the storage kept for
// reuse, which must be empty.
func checkRecycled(v reflect.Value, path string) error {
	if path == "activeStream.ctx" {
		// Readied by release; on HTTP/1.x, kept by the connection.
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch path {
	case "activeStream.timer", // serves no stream (live is nil), may be firing: not read here
		"activeStream.ctx.Cancellable.done", // open, nothing waits on it
		"activeStream.ctx.parentDone",
		"activeStream.ctx.parent", // the connection's, with its registration
		"activeStream.ctx.stopParent",
		"activeStream.ctx.Cancellable.nextID":
		return nil
	}
	if v.Kind() == reflect.Map && path == "activeStream.streamState.requestState.filters.info.FilterState" {
		// Kept emptied for the next stream (keptFilterState).
		if v.Len() != 0 {
			return fmt.Errorf("%s: %d entries left", path, v.Len())
		}
		return nil
	}
	if v.Kind() == reflect.Slice && (strings.HasSuffix(path, ".fields") || strings.HasSuffix(path, ".arena") || path == "activeStream.ctx.Cancellable.funcs") {
		if v.Len() != 0 {
			return fmt.Errorf("%s: %d entries left", path, v.Len())
		}
		return nil
	}
	if v.Kind() == reflect.Struct && !v.IsZero() {
		for i := range v.NumField() {
			if err := checkRecycled(v.Field(i), path+"."+v.Type().Field(i).Name); err != nil {
				return err
			}
		}
		return nil
	}
	if !v.IsZero() {
		return fmt.Errorf("%s is not cleared", path)
	}
	return nil
}

// startUpstream serves h on 127.0.0.1 until the test ends.
func startUpstream(t *testing.T, h http.HandlerFunc) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// startProxy serves the HTTP/1.1 listener "public" of cfg with a
// connection manager until the test ends; it returns the address and the
// access log.
func startProxy(t *testing.T, cfgText string) (string, *observer.ObservedLogs) {
	return startProxyFilters(t, cfgText, nil)
}

// startProxyFilters is startProxy with the plugins the config names
// served by facs.
func startProxyFilters(t *testing.T, cfgText string, facs map[string]filter.Factory) (string, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	cm := newTestConnectionManager(t, cfgText, "public", facs, zap.New(core))
	return serveManager(t, cm), logs
}

// startProxyManager is startProxyFilters without an access log, returning
// the connection manager (its snapshot's clusters).
func startProxyManager(t *testing.T, cfgText string, facs map[string]filter.Factory) (string, *ConnectionManager) {
	cm := newTestConnectionManager(t, cfgText, "public", facs, nil)
	return serveManager(t, cm), cm
}

// serveManager serves cm's HTTP/1.1 streams on 127.0.0.1 until the test
// ends.
func serveManager(t *testing.T, cm *ConnectionManager) string {
	srv := &http1.Server{StreamHandler: cm}
	return serveConns(t, func(c net.Conn) { srv.ServeConn(c, nil) }, srv.Close)
}

// serveConns accepts connections on 127.0.0.1 and serves each with serve
// until the test ends, when stop runs and every serve has returned.
func serveConns(t *testing.T, serve func(net.Conn), stop func()) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		stop()
		wg.Wait()
	})
	return ln.Addr().String()
}

// waitLines waits (boundedly) for n access-log lines: a line is written
// as the stream ends, just after the client has its response.
func waitLines(t *testing.T, logs *observer.ObservedLogs, n int) []observer.LoggedEntry {
	deadline := time.Now().Add(5 * time.Second)
	for logs.Len() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	lines := logs.All()
	if len(lines) < n {
		t.Fatalf("%d access-log lines, want %d", len(lines), n)
	}
	return lines
}

// TestKeptFilterState: a recycled stream keeps its filter state map
// emptied (the next stream's filters fill it without making one), unless
// a filter filled it past keptFilterStateMax.
func TestKeptFilterState(t *testing.T) {
	m := map[string][]byte{"consumer": []byte("alice"), "canary.subset": []byte("v2")}
	kept := keptFilterState(m)
	if len(kept) != 0 || reflect.ValueOf(kept).Pointer() != reflect.ValueOf(m).Pointer() {
		t.Errorf("kept %v (same map: %v), want the same map emptied", kept, reflect.ValueOf(kept).Pointer() == reflect.ValueOf(m).Pointer())
	}
	big := map[string][]byte{}
	for i := range keptFilterStateMax + 1 {
		big[fmt.Sprint(i)] = nil
	}
	if kept := keptFilterState(big); kept != nil {
		t.Errorf("a map of %d keys was kept", len(big))
	}
	if kept := keptFilterState(nil); kept != nil {
		t.Errorf("nil became %v", kept)
	}
}
