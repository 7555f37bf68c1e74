package wasmfilter

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// testStream is a small real Stream over header maps, as the proxy
// builds one.
type testStream struct {
	req     stream.HeaderMap
	resp    *stream.HeaderMap
	respTr  stream.HeaderMap
	info    filter.Info
	mu      sync.Mutex
	local   []filter.LocalReply
	resumed chan filter.Direction
}

func newTestStream(method, target string) *testStream {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	s := &testStream{resumed: make(chan filter.Direction, 8), info: filter.Info{
		ID: 7, RequestID: "rid-1", Start: time.Now(), Protocol: "HTTP/1.1", Scheme: "http",
		RouteName: "orders", ClusterName: "orders-v1", Source: "127.0.0.1:5555", Destination: "127.0.0.1:8080",
		ConnectionID: 3, RouteMetadata: map[string]any{"filter_metadata": map[string]any{"ns": map[string]any{"tier": "gold"}}},
	}}
	s.req.Add(stream.Method, method)
	s.req.Add(stream.Path, u.RequestURI())
	s.req.Add(stream.Authority, u.Host)
	s.req.Add(stream.Scheme, u.Scheme)
	s.req.Add("user-agent", "test-agent")
	s.req.Add("x-multi", "a")
	s.req.Add("x-multi", "b")
	return s
}

// respond starts the response phase with status and fields.
func (s *testStream) respond(status string, kv ...string) {
	s.resp = &stream.HeaderMap{}
	s.resp.Add(stream.Status, status)
	for i := 0; i+1 < len(kv); i += 2 {
		s.resp.Add(kv[i], kv[i+1])
	}
}

func (s *testStream) Context() context.Context           { return context.Background() }
func (s *testStream) RequestHeaders() *stream.HeaderMap  { return &s.req }
func (s *testStream) RequestTrailers() *stream.HeaderMap { return nil }
func (s *testStream) ResponseHeaders() *stream.HeaderMap { return s.resp }
func (s *testStream) ResponseTrailers() *stream.HeaderMap {
	if s.resp == nil {
		return nil
	}
	return &s.respTr
}
func (s *testStream) Resume(d filter.Direction) { s.resumed <- d }
func (s *testStream) Info() *filter.Info        { return &s.info }
func (s *testStream) SendLocalReply(r filter.LocalReply) {
	s.mu.Lock()
	s.local = append(s.local, r)
	s.mu.Unlock()
}

func guest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "hostabi", "testdata", "go", name, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// One engine for the test binary (compiling a Go guest costs seconds; the
// disk cache keeps later runs fast). It is never closed: a wazero runtime
// holds no goroutines, only memory the process gives back at exit.
var (
	testEngineOnce sync.Once
	testEngine     *hostabi.Engine
	testEngineErr  error
	testLogs       *observer.ObservedLogs
)

func engine(t testing.TB) *hostabi.Engine {
	testEngineOnce.Do(func() {
		var core zapcore.Core
		core, testLogs = observer.New(zapcore.DebugLevel)
		testEngine, testEngineErr = hostabi.NewEngine(context.Background(), hostabi.EngineConfig{
			CacheDir: filepath.Join(os.TempDir(), "sluice-wasm-cache"), Logger: zap.New(core)})
	})
	if testEngineErr != nil {
		t.Fatal(testEngineErr)
	}
	return testEngine
}

// newFactory loads a guest as a plugin named after the test and returns
// the factory and the plugin's log lines.
func newFactory(t testing.TB, cfg hostabi.PluginConfig, guestName string) (*WasmFactory, func() *observer.ObservedLogs) {
	t.Helper()
	e := engine(t)
	cfg.Name = t.Name()
	cfg.Wasm = guest(t, guestName)
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	p, err := e.Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := NewWasmFactory(p, zap.NewNop())
	f.DrainTimeout = 5 * time.Second
	t.Cleanup(f.Close)
	name := t.Name()
	return f, func() *observer.ObservedLogs { return testLogs.FilterField(zap.String("plugin", name)) }
}

func wantLog(t *testing.T, logsOf func() *observer.ObservedLogs, want ...string) {
	t.Helper()
	logs := logsOf()
	for _, w := range want {
		if logs.FilterMessage(w).Len() == 0 {
			var all []string
			for _, e := range logs.All() {
				all = append(all, e.Message)
			}
			t.Errorf("missing log %q in:\n%s", w, strings.Join(all, "\n"))
		}
	}
}

func TestWasmFilterHeadersAndProperties(t *testing.T) {
	f, logs := newFactory(t, hostabi.PluginConfig{PluginConfig: []byte(
		"request_headers: hdr_get 0 :path | hdr_get 0 :authority | hdr_get 0 x-multi | hdr_get 0 host" +
			" | hdr_add 0 x-wasm yes | hdr_replace 0 :path /new?x=1 | hdr_replace 0 :method POST | hdr_remove 0 user-agent" +
			" | prop_get request/method | prop_get request/url_path | prop_get request/id | prop_geti source/port" +
			" | prop_get source/address | prop_get route_name | prop_get xds/route_name | prop_get xds/cluster_name" +
			" | prop_get route_metadata/filter_metadata/ns/tier | prop_geti connection/id | prop_get request/protocol" +
			" | prop_set canary/subset v2 | prop_get canary/subset | prop_get nope\n" +
			"response_headers: hdr_get 2 :status | hdr_replace 2 :status 201 | hdr_add 2 x-resp 1 | prop_geti response/code\n")}, "rawabi")
	s := newTestStream("GET", "http://example.com/orders/1?q=2")
	flt, err := f.NewFilter(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if st := flt.OnRequestHeaders(s, true); st != filter.Continue {
		t.Fatalf("status %v", st)
	}
	s.respond("200", "content-type", "text/plain")
	if st := flt.OnResponseHeaders(s, false); st != filter.Continue {
		t.Fatalf("status %v", st)
	}
	flt.OnLog(s)
	flt.OnDone(s)
	wantLog(t, logs,
		"request_headers n=7 eos=1",
		"request_headers hdr_get: status=0 /orders/1?q=2",
		"request_headers hdr_get: status=0 example.com",
		"request_headers hdr_get: status=0 a",
		"request_headers prop_get: status=0 POST",
		"request_headers prop_get: status=0 /new",
		"request_headers prop_get: status=0 rid-1",
		"request_headers prop_geti: status=0 5555",
		"request_headers prop_get: status=0 127.0.0.1:5555",
		"request_headers prop_get: status=0 orders",
		"request_headers prop_get: status=0 orders-v1",
		"request_headers prop_get: status=0 gold",
		"request_headers prop_geti: status=0 3",
		"request_headers prop_get: status=0 HTTP/1.1",
		"request_headers prop_get: status=0 v2",
		"request_headers prop_get: status=1 ",
		"response_headers n=2 eos=0",
		"response_headers hdr_get: status=0 200",
		"response_headers prop_geti: status=0 201",
	)
	if get(&s.req, "x-wasm") != "yes" || get(&s.req, ":path") != "/new?x=1" ||
		get(&s.req, ":method") != "POST" || s.req.Has("user-agent") {
		t.Errorf("request after filter: %v", dump(&s.req))
	}
	if get(s.resp, ":status") != "201" || get(s.resp, "x-resp") != "1" {
		t.Errorf("response after filter: %v", dump(s.resp))
	}
	if string(s.info.FilterState["canary.subset"]) != "v2" {
		t.Errorf("filter state = %q", s.info.FilterState)
	}
}

func TestWasmFilterBodyAndLocalReply(t *testing.T) {
	f, _ := newFactory(t, hostabi.PluginConfig{PluginConfig: []byte(
		"request_body: buf_set 0 0 100 rewritten | ret 1\n" +
			"response_headers: local 403 denied policy x-why=wasm -1\n")}, "rawabi")
	s := newTestStream("POST", "http://example.com/")
	flt, err := f.NewFilter(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer flt.OnDone(s)
	b := &filter.Body{Data: []byte("original")}
	if st := flt.OnRequestBody(s, b, false); st != filter.StopIterationAndBuffer || string(b.Data) != "rewritten" {
		t.Errorf("body: %v %q", st, b.Data)
	}
	s.respond("200")
	if st := flt.OnResponseHeaders(s, false); st != filter.StopIteration {
		t.Errorf("status after local reply = %v", st)
	}
	if len(s.local) != 1 || s.local[0].Status != 403 || string(s.local[0].Body) != "denied" ||
		get(s.local[0].Header, "x-why") != "wasm" || s.local[0].Details != "policy" || s.local[0].GRPCStatus != -1 {
		t.Errorf("local replies = %+v", s.local)
	}
}

// TestWasmFilterSeesItsOwnLocalReply: a filter that answered the request
// gets its reply's head in on_response_headers, as in Envoy, where a
// local reply passes back through the filters the request reached; the
// reply it made earlier does not stop that callback.
func TestWasmFilterSeesItsOwnLocalReply(t *testing.T) {
	f, _ := newFactory(t, hostabi.PluginConfig{PluginConfig: []byte(
		"request_headers: local 401 denied policy x-why=wasm -1\n" +
			"response_headers: hdr_add 2 x-seen yes\n")}, "rawabi")
	s := newTestStream("GET", "http://example.com/")
	flt, err := f.NewFilter(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer flt.OnDone(s)
	if st := flt.OnRequestHeaders(s, true); st != filter.StopIteration || len(s.local) != 1 || s.local[0].Status != 401 {
		t.Fatalf("request headers: %v, replies %+v", st, s.local)
	}
	s.respond("401", "x-why", "wasm")
	if st := flt.OnResponseHeaders(s, true); st != filter.Continue || get(s.resp, "x-seen") != "yes" {
		t.Errorf("its reply's head: %v, %v; want Continue and x-seen", st, dump(s.resp))
	}
}

func TestWasmFilterPauseResume(t *testing.T) {
	f, _ := newFactory(t, hostabi.PluginConfig{PluginConfig: []byte(
		"request_headers: tick 5 | ret 1\nresponse_headers: ret 1\ntick: effective | continue 1 | tick 0")}, "rawabi")
	s := newTestStream("GET", "http://example.com/")
	flt, err := f.NewFilter(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer flt.OnDone(s)
	if st := flt.OnRequestHeaders(s, false); st != filter.StopIteration {
		t.Fatalf("status %v", st)
	}
	select {
	case d := <-s.resumed:
		if d != filter.Response {
			t.Errorf("resumed %v, want Response (continue 1)", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not resumed")
	}
}

func TestWasmFilterFailurePolicy(t *testing.T) {
	for _, open := range []bool{false, true} {
		name := "closed"
		if open {
			name = "open"
		}
		t.Run(name, func(t *testing.T) {
			f, _ := newFactory(t, hostabi.PluginConfig{PluginConfig: []byte("trap"), FailOpen: open,
				Instances: 1, RestartBackoff: time.Hour}, "hostile")
			if f.FailOpen() != open || f.Name() != t.Name() {
				t.Fatal("factory does not report its plugin")
			}
			s := newTestStream("GET", "http://example.com/")
			flt, err := f.NewFilter(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			st := flt.OnRequestHeaders(s, true)
			if open {
				if st != filter.Continue || len(s.local) != 0 {
					t.Errorf("fail-open: %v %+v", st, s.local)
				}
				b := &filter.Body{Data: []byte("x")}
				if st := flt.OnRequestBody(s, b, true); st != filter.Continue || string(b.Data) != "x" {
					t.Errorf("fail-open body: %v", st)
				}
			} else if st != filter.StopIteration || len(s.local) != 1 || s.local[0].Status != 503 {
				t.Errorf("fail-closed: %v %+v", st, s.local)
			}
			// The 503 (or the upstream's answer, fail-open) passes back
			// through the chain: the broken filter lets it by.
			s.respond("503")
			if st := flt.OnResponseHeaders(s, true); st != filter.Continue {
				t.Errorf("response headers after the failure: %v, want Continue", st)
			}
			flt.OnLog(s)
			flt.OnDone(s)
			// The replacement instance breaks too; now every instance is
			// gone and replacement is backing off: the factory refuses and
			// leaves the policy to the proxy.
			s2 := newTestStream("GET", "http://example.com/")
			flt2, err := f.NewFilter(context.Background(), s2)
			if err != nil {
				t.Fatal(err)
			}
			flt2.OnRequestHeaders(s2, true)
			flt2.OnDone(s2)
			if _, err := f.NewFilter(context.Background(), newTestStream("GET", "http://example.com/")); err == nil {
				t.Error("NewFilter succeeded with no instance")
			}
			if st, ok := f.Status().(hostabi.Stats); !ok || st.Failures != 2 {
				t.Errorf("status = %+v", f.Status())
			}
		})
	}
}

// dump is a map's fields as "name: value" lines, for failure messages.
func dump(h *stream.HeaderMap) string {
	var b strings.Builder
	for name, value := range h.All() {
		fmt.Fprintf(&b, "%s: %s\n", name, value)
	}
	return b.String()
}

// TestWasmFilterDeclaresSkipsAndFinal: a Wasm filter tells the proxy the
// callbacks its plugin skips (sluice_skip_callbacks: the add-header
// built-in reads no body or trailers; a guest that never says so skips
// none), and that OnDone is its last call on the stream: a Resume or
// local reply a callback queued and hostabi runs after OnDone no longer
// reaches the stream, which the proxy may then reuse.
func TestWasmFilterDeclaresSkipsAndFinal(t *testing.T) {
	_, f := builtinFactory(t, "add-header", `{"request_headers":{"x-a":"1"}}`, 0)
	s := newTestStream("GET", "http://example.com/")
	hf, err := f.NewFilter(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	sk, ok := hf.(filter.Skipper)
	if !ok {
		t.Fatal("a Wasm filter does not implement filter.Skipper")
	}
	bodies := filter.BodyCallbacks(filter.Request) | filter.BodyCallbacks(filter.Response)
	if got := sk.SkippedCallbacks(); got&bodies != bodies || got&filter.RequestHeadersCallback != 0 {
		t.Errorf("add-header skips %07b, want the body and trailer callbacks and not the request headers", got)
	}
	if fin, ok := hf.(filter.Finisher); !ok || !fin.DoneIsFinal() {
		t.Fatal("a Wasm filter does not promise OnDone is final")
	}
	w := hf.(*wasmFilter)
	w.host.Resume(hostabi.StreamRequest)
	if len(s.resumed) != 1 {
		t.Fatal("a Resume before OnDone did not reach the stream")
	}
	<-s.resumed
	hf.OnDone(s)
	w.host.Resume(hostabi.StreamResponse)
	w.host.SendLocalResponse(hostabi.LocalResponse{Status: 403})
	w.host.Close(hostabi.StreamRequest)
	if len(s.resumed) != 0 || len(s.local) != 0 {
		t.Errorf("after OnDone the stream still got %d resumes and %d local replies", len(s.resumed), len(s.local))
	}

	g, _ := newFactory(t, hostabi.PluginConfig{}, "abi010")
	hf, err = g.NewFilter(context.Background(), newTestStream("GET", "http://example.com/"))
	if err != nil {
		t.Fatal(err)
	}
	defer hf.OnDone(s)
	if got := hf.(filter.Skipper).SkippedCallbacks(); got != 0 {
		t.Errorf("a guest that never called sluice_skip_callbacks skips %07b, want none", got)
	}
}
