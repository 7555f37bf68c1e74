package filters_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/server"
)

// The examples' .wasm files are the committed ones (`make -C
// examples/filters check` proves them fresh); this test runs each in a
// real sluice between a client and an upstream on 127.0.0.1.

var wasms = map[string]string{
	"header-go":   "header-go/header-go.wasm",
	"header-rust": "header-rust/header-rust.wasm",
	"auth-go":     "auth-go/auth-go.wasm",
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// closedAddr is an address where nothing listens (any more).
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); err != nil {
		t.Fatalf("%v (run 'make -C examples/filters build')", err)
	}
	return a
}

func TestExampleConfigsValidate(t *testing.T) {
	for name := range wasms {
		path := abs(t, filepath.Join(name, "sluice.toml"))
		if _, err := config.LoadWithMode(path, ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestExampleFiltersThroughSluice(t *testing.T) {
	// The upstream answers with the request headers it saw.
	var upstreamCalls atomic.Int32
	upstream := serve(t, func(w http.ResponseWriter, r *http.Request) {
		upstreamCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.Header)
	})
	// The auth service allows "Bearer good" as alice, refuses the rest,
	// and fails with a 500 for "Bearer boom".
	var authCalls atomic.Int32
	auth := serve(t, func(w http.ResponseWriter, r *http.Request) {
		authCalls.Add(1)
		if r.URL.Path != "/check" || r.Header.Get("X-Original-Path") == "" {
			http.Error(w, "bad call "+r.URL.Path, http.StatusBadRequest)
			return
		}
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			w.Header().Set("X-Auth-User", "alice")
			w.WriteHeader(http.StatusNoContent)
		case "Bearer boom":
			http.Error(w, "oops", http.StatusInternalServerError)
		default:
			http.Error(w, "who are you", http.StatusUnauthorized)
		}
	})

	dir := t.TempDir()
	cfg := `
[admin]
address = "127.0.0.1:0"

[server]
watch_config = false
drain_timeout = "5s"

[[listeners]]
name = "public"
address = "127.0.0.1:0"
protocols = ["http1", "h2c"]

[[plugins]]
name = "header-go"
wasm = "` + abs(t, wasms["header-go"]) + `"
config = { header = "x-hello", value = "go", response_header = "x-filter", response_value = "header-go" }
vm = { instances = 1 }

[[plugins]]
name = "header-rust"
wasm = "` + abs(t, wasms["header-rust"]) + `"
config = { header = "x-hello", value = "rust", response_header = "x-filter", response_value = "header-rust" }
vm = { instances = 1 }

[[plugins]]
name = "auth"
wasm = "` + abs(t, wasms["auth-go"]) + `"
config = { cluster = "auth", path = "/check", timeout_ms = 2000, forward = ["authorization"], copy = ["x-auth-user"] }
vm = { instances = 1 }

[[plugins]]
name = "auth-down"
wasm = "` + abs(t, wasms["auth-go"]) + `"
config = { cluster = "down", timeout_ms = 2000 }
vm = { instances = 1 }

[[routes]]
name = "down"
match = { path_prefix = "/down" }
plugins = ["auth-down"]
backends = [ { cluster = "app" } ]

[[routes]]
name = "go"
match = { path_prefix = "/go" }
plugins = ["header-go"]
backends = [ { cluster = "app" } ]

[[routes]]
name = "rust"
match = { path_prefix = "/rust" }
plugins = ["header-rust"]
backends = [ { cluster = "app" } ]

[[routes]]
name = "auth"
match = { path_prefix = "/auth" }
plugins = ["auth"]
backends = [ { cluster = "app" } ]

[[clusters]]
name = "app"
endpoints = ["` + upstream + `"]

[[clusters]]
name = "auth"
endpoints = ["` + auth + `"]

[[clusters]]
name = "down"
endpoints = ["` + closedAddr(t) + `"]
`
	path := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{ConfigPath: path, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	base := "http://" + srv.ListenerAddr("public")

	get := func(t *testing.T, path, authorization string) (*http.Response, map[string][]string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var seen map[string][]string
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			if err := json.Unmarshal(body, &seen); err != nil {
				t.Fatalf("GET %s: %v in %q", path, err, body)
			}
		}
		return resp, seen, string(body)
	}

	for _, lang := range []string{"go", "rust"} {
		t.Run("header-"+lang, func(t *testing.T) {
			resp, seen, body := get(t, "/"+lang, "")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := seen["X-Hello"]; len(got) != 1 || got[0] != lang {
				t.Errorf("upstream saw x-hello %q, want [%s]", got, lang)
			}
			if got := resp.Header.Get("X-Filter"); got != "header-"+lang {
				t.Errorf("response x-filter %q, want header-%s", got, lang)
			}
		})
	}

	t.Run("auth-go", func(t *testing.T) {
		for _, tc := range []struct {
			authorization string
			status        int
		}{{"", 403}, {"Bearer bad", 403}, {"Bearer boom", 403}, {"Bearer good", 200}} {
			authBefore, upBefore := authCalls.Load(), upstreamCalls.Load()
			resp, seen, body := get(t, "/auth/orders", tc.authorization)
			if resp.StatusCode != tc.status {
				t.Errorf("authorization %q: status %d (%q), want %d", tc.authorization, resp.StatusCode, body, tc.status)
				continue
			}
			if authCalls.Load() != authBefore+1 {
				t.Errorf("authorization %q: the auth service was called %d times, want once", tc.authorization, authCalls.Load()-authBefore)
			}
			if tc.status == 403 {
				if upstreamCalls.Load() != upBefore {
					t.Errorf("authorization %q: a refused request reached the upstream", tc.authorization)
				}
				continue
			}
			if got := seen["X-Auth-User"]; len(got) != 1 || got[0] != "alice" {
				t.Errorf("upstream saw x-auth-user %q, want [alice]", got)
			}
		}
	})

	t.Run("auth-go service down", func(t *testing.T) {
		upBefore := upstreamCalls.Load()
		resp, _, body := get(t, "/down", "Bearer good")
		if resp.StatusCode != 403 || !strings.Contains(body, "unavailable") {
			t.Errorf("with the auth service down: status %d (%q), want 403 auth service unavailable", resp.StatusCode, body)
		}
		if upstreamCalls.Load() != upBefore {
			t.Error("a request reached the upstream with the auth service down")
		}
	})
}
