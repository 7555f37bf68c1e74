// Package admin serves sluice's admin HTTP API: readiness, Prometheus
// metrics, the effective config, plugin and cluster dumps, and reloads.
// Errors come back in one JSON shape: {"error": "..."}.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/stats"
)

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
	mux.HandleFunc("POST /config/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Reload(); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, map[string]string{"status": "reloaded"})
	})
	mux.HandleFunc("POST /plugins/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ReloadPlugins(); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, map[string]string{"status": "reloaded"})
	})
	mux.HandleFunc("GET /plugins", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Plugins()) })
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Clusters()) })
	// Go's profiler, as Envoy's admin has /cpuprofiler: the admin listener
	// is loopback by default and carries no user traffic.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)

	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	a := &Admin{ln: ln, log: log, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", zap.Error(err))
		}
	}()
	return a, nil
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
