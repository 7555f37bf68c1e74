package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// echoUpstream is a real upstream on 127.0.0.1 that answers with what it
// received, so tests can see what the proxy forwarded.
type echoUpstream struct {
	srv  *http.Server
	addr string
}

type echoReply struct {
	Name   string              `json:"name"`
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Host   string              `json:"host"`
	Header map[string][]string `json:"header"`
	Body   string              `json:"body"`
	Proto  string              `json:"proto"`
}

func startEcho(t testing.TB, name string, h http.HandlerFunc) *echoUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Upstream", name)
			json.NewEncoder(w).Encode(echoReply{Name: name, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header, Body: string(b), Proto: r.Proto})
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &echoUpstream{srv: srv, addr: ln.Addr().String()}
}

// testServer is a running sluice with its log observed.
type testServer struct {
	*Server
	path string
	logs *observer.ObservedLogs
}

// startServer writes cfg (with %s-free placeholders already filled) to a
// temp file and runs sluice on it until the test ends.
func startServer(t testing.TB, cfg string) *testServer {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	s, err := New(Options{ConfigPath: path, Log: zap.New(core)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return &testServer{Server: s, path: path, logs: logs}
}

// waitPluginsCompiled waits until every loaded plugin runs compiled code:
// with a cold compile cache a built-in serves from wazero's interpreter
// first, whose allocations and speed are not the ones a test pins.
func (ts *testServer) waitPluginsCompiled(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for name, e := range ts.plugins.byName {
		w, ok := e.p.(interface{ WaitCompiled(context.Context) error })
		if !ok {
			continue
		}
		if err := w.WaitCompiled(ctx); err != nil {
			t.Fatalf("plugin %s: waiting for its compiled code: %v", name, err)
		}
	}
}

// baseConfig is a config with one listener on a free port, no admin
// conflicts (port 0) and no file watching unless asked.
func baseConfig(extra string) string {
	return `
[admin]
address = "127.0.0.1:0"

[server]
watch_config = false
drain_timeout = "5s"

[[listeners]]
name = "public"
address = "127.0.0.1:0"
protocols = ["http1", "h2c"]
` + extra
}

func (ts *testServer) url(path string) string {
	return "http://" + ts.ListenerAddr("public") + path
}

func getJSON(t testing.TB, c *http.Client, req *http.Request) (*http.Response, echoReply) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e echoReply
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("decoding %q: %v", b, err)
		}
	}
	return resp, e
}

func mustReq(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var _ = fmt.Sprintf
