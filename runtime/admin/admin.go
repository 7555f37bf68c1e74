// Package admin serves sluice's admin HTTP API: readiness, Prometheus
// metrics, the effective config, plugin and cluster dumps, and reloads,
// with an index and a live dashboard at GET /.
// Errors come back in one JSON shape: {"error": "..."}.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/stats"
)

// HeapProfileRate is Go's default heap sampling rate, what
// POST /heapprofiler?enable=y sets. The sluice binary starts with the
// profiler off (runtime.MemProfileRate = 0).
const HeapProfileRate = 512 * 1024

// Server is what the admin API asks of the running proxy.
type Server interface {
	// Ready reports whether listeners are up and the config is loaded.
	Ready() bool
	// ConfigJSON is the effective config, secrets left out.
	ConfigJSON() ([]byte, error)
	// Reload re-reads the config file; a bad file is refused and the old
	// config keeps serving.
	Reload() error
	// ReloadPlugins re-reads every plugin's .wasm.
	ReloadPlugins() error
	// Plugins and Clusters are JSON-encodable dumps.
	Plugins() any
	Clusters() any
}

// Admin is the running admin listener.
type Admin struct {
	srv *http.Server
	ln  net.Listener
	log *zap.Logger
}

// Start listens on address and serves the admin API.
func Start(address string, s Server, reg *stats.Registry, log *zap.Logger) (*Admin, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveIndex)
	mux.Handle("GET /dashboard/", serveDashboardAsset())
	mux.HandleFunc("GET /summary", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, readSummary(reg)) })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !s.Ready() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		reg.WritePrometheus(w)
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		b, err := s.ConfigJSON()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	a := &Admin{log: log}
	mux.HandleFunc("POST /config/reload", a.sameOrigin(func(w http.ResponseWriter, r *http.Request) {
		if err := s.Reload(); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, map[string]string{"status": "reloaded"})
	}))
	mux.HandleFunc("POST /plugins/reload", a.sameOrigin(func(w http.ResponseWriter, r *http.Request) {
		if err := s.ReloadPlugins(); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, map[string]string{"status": "reloaded"})
	}))
	mux.HandleFunc("GET /plugins", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Plugins()) })
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Clusters()) })
	// Go's profiler, as Envoy's admin has /cpuprofiler: the admin listener
	// is loopback by default and carries no user traffic.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	// The heap profiler is off until asked for, as Envoy's
	// /heapprofiler is: sampling fills a table of call paths page by page
	// for the life of the process (about 1.5 MiB of RSS that no one
	// reads unless they profile).
	mux.HandleFunc("POST /heapprofiler", a.sameOrigin(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("enable") {
		case "y":
			runtime.MemProfileRate = HeapProfileRate
		case "n":
			runtime.MemProfileRate = 0
		default:
			writeError(w, http.StatusBadRequest, errors.New("heapprofiler: enable must be y or n"))
			return
		}
		writeJSON(w, map[string]bool{"heap_profiler": runtime.MemProfileRate > 0})
	}))

	l, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	ln := newReserveListener(l, log)
	a.ln, a.srv = ln, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", zap.Error(err))
		}
	}()
	return a, nil
}

// sameOrigin guards a handler that changes state against cross-site
// requests: a web page the operator's browser visits could otherwise POST
// a reload to the loopback admin port (a "simple" cross-origin POST is
// sent without a CORS preflight). A request with Sec-Fetch-Site other than
// same-origin or none (typed by the user), or with an Origin that is not
// the admin listener's own, gets 403. Clients that send neither (curl,
// scripts) are served as before; reads are not guarded.
func (a *Admin) sameOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			writeError(w, http.StatusForbidden, fmt.Errorf("cross-site request refused (Sec-Fetch-Site: %s): the admin API takes changes only from its own origin", site))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !a.ownOrigin(origin) {
			writeError(w, http.StatusForbidden, fmt.Errorf("request from origin %q refused: the admin API takes changes only from its own origin, or from clients that send none", origin))
			return
		}
		h(w, r)
	}
}

// ownOrigin reports whether origin is the admin listener's: http, its
// port, and its address, or where it listens on every address, any IP
// literal (or "localhost", for a loopback or wildcard listener). A host
// name other than localhost is refused even when it resolves here: that
// is how a DNS-rebinding page would present itself.
func (a *Admin) ownOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false
	}
	bound, ok := a.ln.Addr().(*net.TCPAddr)
	if !ok {
		return false
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	if port != strconv.Itoa(bound.Port) {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return bound.IP.IsLoopback() || bound.IP.IsUnspecified()
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	bip, _ := netip.AddrFromSlice(bound.IP)
	switch {
	case bound.IP.IsUnspecified():
		return true
	case bound.IP.IsLoopback():
		return ip.Unmap().IsLoopback()
	}
	return ip.Unmap() == bip.Unmap()
}

// Addr is the bound address.
func (a *Admin) Addr() net.Addr { return a.ln.Addr() }

// Close stops the admin listener.
func (a *Admin) Close(ctx context.Context) error { return a.srv.Shutdown(ctx) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
