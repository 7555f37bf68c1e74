package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// recorder is a test filter that records its callbacks in order and the
// body bytes it was given. It declares nothing: it wants every callback
// and may call back after OnDone as far as the proxy knows.
type recorder struct {
	mu    sync.Mutex
	calls []string
	bytes [2]int
	eos   [2]bool
	// onRequestHeaders, when set, decides the request headers callback.
	onRequestHeaders func(s filter.Stream) filter.Status
}

func (r *recorder) note(call string) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
}

func (r *recorder) body(d filter.Direction, b *filter.Body, eos bool) filter.Status {
	r.mu.Lock()
	r.calls = append(r.calls, [2]string{"reqBody", "respBody"}[d])
	r.bytes[d] += len(b.Data)
	r.eos[d] = r.eos[d] || eos
	r.mu.Unlock()
	return filter.Continue
}

func (r *recorder) OnRequestHeaders(s filter.Stream, eos bool) filter.Status {
	r.note("reqHeaders")
	if r.onRequestHeaders != nil {
		return r.onRequestHeaders(s)
	}
	return filter.Continue
}

func (r *recorder) OnResponseHeaders(s filter.Stream, eos bool) filter.Status {
	r.note("respHeaders")
	s.ResponseHeaders().Add("x-filtered", "1")
	return filter.Continue
}

func (r *recorder) OnRequestBody(s filter.Stream, b *filter.Body, eos bool) filter.Status {
	return r.body(filter.Request, b, eos)
}

func (r *recorder) OnResponseBody(s filter.Stream, b *filter.Body, eos bool) filter.Status {
	return r.body(filter.Response, b, eos)
}

func (r *recorder) OnRequestTrailers(filter.Stream) filter.Status {
	r.note("reqTrailers")
	return filter.Continue
}

func (r *recorder) OnResponseTrailers(filter.Stream) filter.Status {
	r.note("respTrailers")
	return filter.Continue
}

func (r *recorder) OnLog(filter.Stream)  { r.note("log") }
func (r *recorder) OnDone(filter.Stream) { r.note("done") }

// finished waits (boundedly) for the filter's OnDone, which runs just
// after the client has its response, and returns what it recorded.
func (r *recorder) finished(t *testing.T) ([]string, [2]int, [2]bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		calls, n, eos := r.record()
		if len(calls) > 0 && calls[len(calls)-1] == "done" {
			return calls, n, eos
		}
		if time.Now().After(deadline) {
			t.Fatalf("the filter's OnDone did not come: calls %v", calls)
		}
	}
}

func (r *recorder) record() ([]string, [2]int, [2]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...), r.bytes, r.eos
}

// headerOnly is a recorder that says it needs no body, trailers or log
// callback (filter.Skipper) and that OnDone is its last call
// (filter.Finisher), as a header-only Wasm built-in does.
type headerOnly struct{ *recorder }

func (headerOnly) SkippedCallbacks() filter.Callbacks {
	return filter.BodyCallbacks(filter.Request) | filter.BodyCallbacks(filter.Response) | filter.LogCallback
}
func (headerOnly) DoneIsFinal() bool { return true }

// finalRecorder wants every callback and promises OnDone is its last.
type finalRecorder struct{ *recorder }

func (finalRecorder) DoneIsFinal() bool { return true }

// recorders is a factory that keeps every filter it made.
type recorders struct {
	name string
	mk   func(r *recorder) filter.HTTPFilter
	hook func(s filter.Stream) filter.Status
	mu   sync.Mutex
	made []*recorder
}

func (f *recorders) Name() string   { return f.name }
func (f *recorders) FailOpen() bool { return false }
func (f *recorders) NewFilter(context.Context, filter.Stream) (filter.HTTPFilter, error) {
	r := &recorder{onRequestHeaders: f.hook}
	f.mu.Lock()
	f.made = append(f.made, r)
	f.mu.Unlock()
	return f.mk(r), nil
}

func (f *recorders) last(t *testing.T) *recorder {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.made) == 0 {
		t.Fatalf("filter %s was never made", f.name)
	}
	return f.made[len(f.made)-1]
}

// skipUpstream answers /…/chunked with three flushed 40,000-byte chunks
// and a trailer, anything else with 100,000 bytes of declared length;
// x-got-len and x-got-cl say what request body it read and what length
// the request declared.
func skipUpstream(t *testing.T) string {
	return startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("x-got-len", strconv.FormatInt(n, 10))
		w.Header().Set("x-got-cl", strconv.FormatInt(r.ContentLength, 10))
		if strings.HasSuffix(r.URL.Path, "/chunked") {
			w.Header().Set("Trailer", "X-Trailer")
			for range 3 {
				w.Write(bytes.Repeat([]byte{'c'}, 40000))
				w.(http.Flusher).Flush()
			}
			w.Header().Set("X-Trailer", "t")
			return
		}
		w.Header().Set("Content-Length", "100000")
		w.Write(bytes.Repeat([]byte{'a'}, 100000))
	})
}

// skipProxy starts a proxy before upstream whose route /f runs the
// plugins named, /p none.
func skipProxy(t *testing.T, upAddr string, facs ...*recorders) string {
	fs := make([]filter.Factory, len(facs))
	for i, f := range facs {
		fs[i] = f
	}
	decl, names, m := declarePlugins(fs)
	addr, _ := startProxyFilters(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "f"
match = { path_prefix = "/f" }
plugins = [`+names+`]
backends = [ { cluster = "up" } ]
[[routes]]
name = "p"
match = { path_prefix = "/p" }
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+upAddr+`"]
`, m)
	return addr
}

// rawClient sends requests on one keep-alive connection and reads each
// response whole (trailers included).
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) do(method, path string, body []byte) (*http.Response, []byte) {
	rc.t.Helper()
	req := method + " " + path + " HTTP/1.1\r\nHost: skip.test\r\n"
	if body != nil {
		req += fmt.Sprintf("content-length: %d\r\n", len(body))
	}
	if _, err := rc.c.Write(append([]byte(req+"\r\n"), body...)); err != nil {
		rc.t.Fatal(err)
	}
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method}) // a HEAD's answer has no body
	if err != nil {
		rc.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	resp.Body.Close()
	return resp, b
}

func without(calls []string, drop ...string) []string {
	var out []string
	for _, c := range calls {
		if !strings.Contains(strings.Join(drop, " "), c) {
			out = append(out, c)
		}
	}
	return out
}

// TestHeaderOnlyFilterLeavesBodyUntouched: with only a filter that skips
// body and trailers callbacks on the route, bodies go as on a route
// without filters, as Envoy's: a response of declared length keeps it
// (it is not read ahead and re-framed), a chunked one keeps its
// trailers, a request body goes with its content-length; the filter's
// header work is there and it sees no callback it skipped.
func TestHeaderOnlyFilterLeavesBodyUntouched(t *testing.T) {
	hdr := &recorders{name: "hdr", mk: func(r *recorder) filter.HTTPFilter { return headerOnly{r} }}
	rc := dialRaw(t, skipProxy(t, skipUpstream(t), hdr))

	resp, body := rc.do("GET", "/f/big", nil)
	if resp.ContentLength != 100000 || len(resp.TransferEncoding) != 0 || len(body) != 100000 || strings.Trim(string(body), "a") != "" {
		t.Errorf("/f/big: content-length %d, transfer-encoding %v, %d bytes: want the upstream's 100000 bytes as declared", resp.ContentLength, resp.TransferEncoding, len(body))
	}
	if resp.Header.Get("x-filtered") != "1" {
		t.Errorf("/f/big: the filter's response header is missing: %v", resp.Header)
	}
	calls, _, _ := hdr.last(t).finished(t)
	if want := []string{"reqHeaders", "respHeaders", "done"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("/f/big: header-only filter's calls %v, want %v", calls, want)
	}

	resp, body = rc.do("GET", "/f/chunked", nil)
	if len(body) != 120000 || resp.Trailer.Get("x-trailer") != "t" {
		t.Errorf("/f/chunked: %d bytes, trailers %v: want 120000 and x-trailer: t", len(body), resp.Trailer)
	}

	resp, _ = rc.do("POST", "/f/big", bytes.Repeat([]byte{'q'}, 70000))
	if resp.Header.Get("x-got-len") != "70000" || resp.Header.Get("x-got-cl") != "70000" {
		t.Errorf("POST /f/big: upstream read %s bytes of declared length %s, want 70000 of 70000", resp.Header.Get("x-got-len"), resp.Header.Get("x-got-cl"))
	}
	calls, _, _ = hdr.last(t).finished(t)
	if want := []string{"reqHeaders", "respHeaders", "done"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("POST /f/big: header-only filter's calls %v, want %v", calls, want)
	}
}

// TestBodyFilterStillSeesEveryByte: beside a header-only filter, a filter
// that wants bodies still gets every chunk of both directions, end of
// stream, and the trailers after the last chunk, as Envoy's; the client
// and the upstream get every byte.
func TestBodyFilterStillSeesEveryByte(t *testing.T) {
	hdr := &recorders{name: "hdr", mk: func(r *recorder) filter.HTTPFilter { return headerOnly{r} }}
	all := &recorders{name: "all", mk: func(r *recorder) filter.HTTPFilter { return finalRecorder{r} }}
	rc := dialRaw(t, skipProxy(t, skipUpstream(t), hdr, all))

	resp, body := rc.do("GET", "/f/chunked", nil)
	if len(body) != 120000 || resp.Trailer.Get("x-trailer") != "t" {
		t.Errorf("/f/chunked: %d bytes, trailers %v: want 120000 and x-trailer: t", len(body), resp.Trailer)
	}
	calls, n, _ := all.last(t).finished(t)
	if n[filter.Response] != 120000 {
		t.Errorf("/f/chunked: the body filter saw %d response bytes, want 120000", n[filter.Response])
	}
	// Headers, the body's chunks, then the trailers ending the stream.
	resp1 := without(calls, "reqHeaders", "log", "done")
	if len(resp1) < 3 || resp1[0] != "respHeaders" || resp1[len(resp1)-1] != "respTrailers" || strings.Count(strings.Join(resp1, " "), "respTrailers") != 1 {
		t.Errorf("/f/chunked: body filter's response calls %v: want headers, body chunks, then trailers once", resp1)
	}
	if hc, _, _ := hdr.last(t).finished(t); !reflect.DeepEqual(hc, []string{"reqHeaders", "respHeaders", "done"}) {
		t.Errorf("/f/chunked: header-only filter's calls %v", hc)
	}

	resp, body = rc.do("POST", "/f/big", bytes.Repeat([]byte{'q'}, 70000))
	if len(body) != 100000 || resp.Header.Get("x-got-len") != "70000" {
		t.Errorf("POST /f/big: %d response bytes, upstream read %s: want 100000 and 70000", len(body), resp.Header.Get("x-got-len"))
	}
	_, n, eos := all.last(t).finished(t)
	if n != [2]int{70000, 100000} || eos != [2]bool{true, true} {
		t.Errorf("POST /f/big: the body filter saw %v bytes, end of stream %v: want [70000 100000], both ended", n, eos)
	}
}

// TestHeaderOnlyFilterPauseAndLocalReply: a header-only filter that
// stops the request headers holds the request (body included) until it
// resumes from another goroutine, and one that answers locally is
// answered; the body then goes whole.
func TestHeaderOnlyFilterPauseAndLocalReply(t *testing.T) {
	hdr := &recorders{name: "hdr", mk: func(r *recorder) filter.HTTPFilter { return headerOnly{r} },
		hook: func(s filter.Stream) filter.Status {
			path, _ := s.RequestHeaders().Get(":path")
			switch string(path) {
			case "/f/deny":
				s.SendLocalReply(filter.LocalReply{Status: 403, Body: []byte("denied\n")})
				return filter.StopIteration
			case "/f/pause":
				time.AfterFunc(20*time.Millisecond, func() { s.Resume(filter.Request) })
				return filter.StopIteration
			}
			return filter.Continue
		}}
	rc := dialRaw(t, skipProxy(t, skipUpstream(t), hdr))

	resp, body := rc.do("POST", "/f/pause", bytes.Repeat([]byte{'q'}, 70000))
	if resp.StatusCode != 200 || resp.Header.Get("x-got-len") != "70000" || len(body) != 100000 {
		t.Errorf("paused POST: %d, upstream read %s, %d bytes back: want 200, 70000, 100000", resp.StatusCode, resp.Header.Get("x-got-len"), len(body))
	}
	resp, body = rc.do("GET", "/f/deny", nil)
	if resp.StatusCode != 403 || string(body) != "denied\n" {
		t.Errorf("denied: %d %q, want 403 denied", resp.StatusCode, body)
	}
}

// TestFilterRouteStreamReused: the active stream of a route whose filters
// all promise OnDone is their last call is recycled with nothing of the
// stream left (its filters, their state, a local reply), and the next
// request on the connection sees nothing of it; a route with a filter
// that does not promise it is not recycled.
func TestFilterRouteStreamReused(t *testing.T) {
	hdr := &recorders{name: "hdr", mk: func(r *recorder) filter.HTTPFilter { return headerOnly{r} },
		hook: func(s filter.Stream) filter.Status {
			info := s.Info()
			if info.FilterState == nil {
				info.FilterState = map[string][]byte{}
			}
			info.FilterState["test.key"] = []byte("from the filter route")
			if path, _ := s.RequestHeaders().Get(":path"); string(path) == "/f/deny" {
				s.SendLocalReply(filter.LocalReply{Status: 403, Body: []byte("denied\n")})
				return filter.StopIteration
			}
			return filter.Continue
		}}
	var mu sync.Mutex
	recycled := 0
	testHookRecycled = func(x *activeStream) {
		if err := checkRecycled(reflect.ValueOf(x).Elem(), "activeStream"); err != nil {
			t.Error(err)
		}
		mu.Lock()
		recycled++
		mu.Unlock()
	}
	t.Cleanup(func() { testHookRecycled = nil })
	waitRecycled := func(n int) {
		t.Helper()
		waitCount(t, "active streams recycled", n, func() int {
			mu.Lock()
			defer mu.Unlock()
			return recycled
		})
	}
	upAddr := skipUpstream(t)
	rc := dialRaw(t, skipProxy(t, upAddr, hdr))

	if resp, _ := rc.do("GET", "/f/1", nil); resp.StatusCode != 200 || resp.Header.Get("x-filtered") != "1" {
		t.Errorf("/f/1: %d %v", resp.StatusCode, resp.Header)
	}
	waitRecycled(1)
	if resp, _ := rc.do("GET", "/p/2", nil); resp.StatusCode != 200 || resp.Header.Get("x-filtered") != "" {
		t.Errorf("/p/2 after a filter route: %d, x-filtered %q: want 200 and none", resp.StatusCode, resp.Header.Get("x-filtered"))
	}
	waitRecycled(2)
	if resp, body := rc.do("GET", "/f/deny", nil); resp.StatusCode != 403 || string(body) != "denied\n" {
		t.Errorf("/f/deny: %d %q", resp.StatusCode, body)
	}
	waitRecycled(3)
	if resp, body := rc.do("GET", "/p/4", nil); resp.StatusCode != 200 || len(body) != 100000 || resp.Header.Get("x-filtered") != "" {
		t.Errorf("/p/4 after a local reply: %d, %d bytes, x-filtered %q", resp.StatusCode, len(body), resp.Header.Get("x-filtered"))
	}
	waitRecycled(4)

	// A filter that may call back after OnDone keeps its stream out of
	// the pool.
	keep := &recorders{name: "keep", mk: func(r *recorder) filter.HTTPFilter { return r }}
	rc2 := dialRaw(t, skipProxy(t, upAddr, keep))
	mu.Lock()
	recycled = 0
	mu.Unlock()
	rc2.do("GET", "/f/5", nil)
	rc2.do("GET", "/p/6", nil)
	waitRecycled(1)
	time.Sleep(20 * time.Millisecond) // a wrong recycle of /f/5 would show by now
	waitRecycled(1)
}
