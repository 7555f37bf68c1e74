package hostabi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// One engine per test binary: compiling a Go guest costs seconds, and the
// on-disk cache makes the next run fast.
var (
	testEngine  *Engine
	testLogs    *observer.ObservedLogs
	testMetrics = NewMemoryMetrics()
	testCaller  = &testHTTPCaller{clusters: map[string]string{}}
	testGRPC    = &fakeGRPC{clusters: map[string]chan *fakeGRPCStream{}}
	testGuests  = map[string][]byte{}
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	core, logs := observer.New(zapcore.DebugLevel)
	testLogs = logs
	for _, g := range []string{"rawabi", "hostile", "abi010"} {
		b, err := os.ReadFile(filepath.Join("testdata", "go", g, g+".wasm"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "test guests missing; run make in hostabi/testdata:", err)
			return 1
		}
		testGuests[g] = b
	}
	ctx := context.Background()
	e, err := NewEngine(ctx, EngineConfig{
		CacheDir: filepath.Join(os.TempDir(), "sluice-wasm-cache"),
		Logger:   zap.New(core),
		HTTP:     testCaller,
		GRPC:     testGRPC,
		Resolver: testResolver{},
		Metrics:  testMetrics,
		Properties: func(path []string) ([]byte, bool) {
			if strings.Join(path, ".") == "node.id" {
				return []byte("test-node"), true
			}
			return nil, false
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEngine = e
	defer e.Close(ctx)
	return m.Run()
}

// load starts a plugin named after the test and closes it at the end.
func load(t testing.TB, guest string, cfg PluginConfig) *Plugin {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = t.Name()
	}
	cfg.Wasm = testGuests[guest]
	if cfg.CallTimeout == 0 {
		// Generous: the race detector slows guests down a lot.
		cfg.CallTimeout = 2 * time.Second
	}
	p, err := testEngine.Load(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// A trusted guest may start on the interpreter (tiered.go).
	if err := p.WaitCompiled(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// logsOf returns the messages the named plugin logged.
func logsOf(name string) []string {
	var out []string
	for _, e := range testLogs.FilterField(zap.String("plugin", name)).All() {
		out = append(out, e.Message)
	}
	return out
}

func hasLog(name, want string) bool {
	for _, l := range logsOf(name) {
		if l == want {
			return true
		}
	}
	return false
}

func wantLogs(t testing.TB, name string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !hasLog(name, w) {
			t.Errorf("missing log line %q; got:\n%s", w, strings.Join(logsOf(name), "\n"))
		}
	}
}

func waitLog(t testing.TB, name, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !hasLog(name, want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q within 5s; got:\n%s", want, strings.Join(logsOf(name), "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testStream is a StreamHost backed by plain maps.
type testStream struct {
	mu      sync.Mutex
	maps    map[MapType]*[][2]string
	props   map[string][]byte
	local   []LocalResponse
	closed  []StreamType
	resumed chan StreamType
}

func newTestStream(reqHeaders ...string) *testStream {
	s := &testStream{maps: map[MapType]*[][2]string{}, props: map[string][]byte{}, resumed: make(chan StreamType, 16)}
	h := [][2]string{{":method", "GET"}, {":path", "/p?q=1"}, {":authority", "example.com"}, {":scheme", "http"}}
	for i := 0; i+1 < len(reqHeaders); i += 2 {
		h = append(h, [2]string{reqHeaders[i], reqHeaders[i+1]})
	}
	s.maps[RequestHeaders] = &h
	return s
}

func (s *testStream) set(t MapType, pairs ...[2]string) { s.maps[t] = &pairs }

func (s *testStream) Headers(t MapType) HeaderMap {
	if p := s.maps[t]; p != nil {
		return pairsMap{p}
	}
	return nil
}
func (s *testStream) SendLocalResponse(r LocalResponse) {
	s.mu.Lock()
	s.local = append(s.local, r)
	s.mu.Unlock()
}
func (s *testStream) Resume(t StreamType) { s.resumed <- t }
func (s *testStream) Close(t StreamType) {
	s.mu.Lock()
	s.closed = append(s.closed, t)
	s.mu.Unlock()
}
func (s *testStream) Property(path []string) ([]byte, bool) {
	v, ok := s.props[strings.Join(path, ".")]
	return v, ok
}
func (s *testStream) SetProperty(path []string, v []byte) error {
	s.props[strings.Join(path, ".")] = v
	return nil
}

func (s *testStream) pairs(t MapType) string {
	var out []string
	for _, kv := range *s.maps[t] {
		out = append(out, kv[0]+"="+kv[1])
	}
	return strings.Join(out, ",")
}

// testHTTPCaller sends http_calls over real sockets to test servers
// registered as clusters.
type testHTTPCaller struct {
	mu       sync.Mutex
	clusters map[string]string
}

func (c *testHTTPCaller) addCluster(t testing.TB, name string, h http.Handler) {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c.mu.Lock()
	c.clusters[name] = srv.URL
	c.mu.Unlock()
	t.Cleanup(func() {
		c.mu.Lock()
		delete(c.clusters, name)
		c.mu.Unlock()
	})
}

func (c *testHTTPCaller) HTTPCall(ctx context.Context, req HTTPCallRequest, done func(HTTPCallResponse, error)) error {
	c.mu.Lock()
	base, ok := c.clusters[req.Cluster]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("cluster %q: %w", req.Cluster, ErrUnknownCluster)
	}
	var method, path string
	hr, _ := http.NewRequest("GET", base, nil)
	for _, kv := range req.Headers {
		switch kv[0] {
		case ":method":
			method = kv[1]
		case ":path":
			path = kv[1]
		case ":authority", ":scheme":
		default:
			hr.Header.Add(kv[0], kv[1])
		}
	}
	hr, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(string(req.Body)))
	if err != nil {
		return err
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		hr = hr.WithContext(ctx)
		go func() { <-ctx.Done(); cancel() }()
	}
	for _, kv := range req.Headers {
		if !strings.HasPrefix(kv[0], ":") {
			hr.Header.Add(kv[0], kv[1])
		}
	}
	go func() {
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			done(HTTPCallResponse{}, err)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			done(HTTPCallResponse{}, err)
			return
		}
		out := HTTPCallResponse{Body: body, Headers: [][2]string{{":status", fmt.Sprint(resp.StatusCode)}}}
		for k, vs := range resp.Header {
			for _, v := range vs {
				out.Headers = append(out.Headers, [2]string{strings.ToLower(k), v})
			}
		}
		for k, vs := range resp.Trailer {
			for _, v := range vs {
				out.Trailers = append(out.Trailers, [2]string{strings.ToLower(k), v})
			}
		}
		done(out, nil)
	}()
	return nil
}

// testResolver answers the resolve_lua foreign function without DNS.
type testResolver struct{}

func (testResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	switch host {
	case "backend.test":
		return []string{"127.0.0.1"}, nil
	case "v6.test":
		return []string{"::1"}, nil
	case "slow.test":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("lookup %s: no such host", host)
}
