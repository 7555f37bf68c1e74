// Package server assembles a running sluice from a config file: listeners,
// the admin API, clusters, plugins and the snapshot they share, and swaps
// that snapshot atomically on reload.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/admin"
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/l4"
	"github.com/sluice-proxy/sluice/runtime/listen"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	"github.com/sluice-proxy/sluice/runtime/proxy"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// Options are the process-level choices made on the command line.
type Options struct {
	ConfigPath string
	// Mode overrides the file's mode when set ("edge", "sidecar").
	Mode string
	Log  *zap.Logger
	// Access receives one line per request, overriding [access_log]
	// (tests, embedding).
	Access *zap.Logger
	// Stderr is where the access log writes without an [access_log]
	// path, buffered (sluice run: os.Stderr). When it is nil too, the
	// lines go to Log named "access" unbuffered.
	Stderr io.Writer
}

// Server is one running sluice process.
type Server struct {
	opts Options
	log  *zap.Logger
	reg  *stats.Registry

	snap atomic.Pointer[proxy.Snapshot]
	// configuring holds the clusters of a config generation whose plugins
	// are being configured, before its snapshot is stored: a filter may
	// call out (http_call, grpc_call) from proxy_on_vm_start or
	// proxy_on_configure, as Envoy allows once its cluster manager is up.
	configuring atomic.Pointer[upstream.Manager]
	streamIDs   atomic.Uint64
	ready       atomic.Bool

	wasm        *wasmEnv
	identity    *mesh.Certificate // [identity], nil without one
	meshMetrics *mesh.Metrics
	mirrors     *proxy.Mirrors // shadow copies of every listener, across reloads
	mu          sync.Mutex     // serialises reloads
	cfg         *config.Config
	cfgStamp    fileStamp
	plugins     *pluginSet
	listeners   []*listen.Listener
	// tcpListeners are the L4 ones.
	tcpListeners []*l4.Listener
	// conns caps downstream connections over every data-plane listener.
	conns     *listen.ConnLimit
	admin     *admin.Admin
	accessLog *accessLog // nil unless Start opened one
	stopWatch chan struct{}
	watchDone chan struct{}

	// built is closed once New has the first snapshot in place: a
	// background fetch that finishes sooner waits for it.
	built chan struct{}
	// closer closes replaced plugin versions after their grace (see
	// retire) and replaced clusters after the drain time.
	closer *closer

	reloads       *stats.Counter
	reloadFailure *stats.Counter
}

// New loads the config and prepares everything, but listens on nothing yet.
func New(opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	cfg, err := config.LoadWithMode(opts.ConfigPath, opts.Mode)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Log, reg: stats.NewRegistry(), cfg: cfg, built: make(chan struct{}), closer: newCloser()}
	s.meshMetrics = mesh.NewMetrics(s.reg)
	s.mirrors = proxy.NewMirrors(cfg.Server.MaxMirrorsInFlight, s.reg, s.log.Named("mirror"))
	s.cfgStamp, _ = stampOf(opts.ConfigPath)
	s.reloads = s.reg.Counter("sluice_config_reloads_total", "Config reloads applied.")
	s.reloadFailure = s.reg.Counter("sluice_config_reload_failures_total", "Config reloads refused.")

	up, err := upstream.NewManager(cfg.Clusters, s.reg, s.log.Named("upstream"))
	if err != nil {
		return nil, fmt.Errorf("clusters: %w", err)
	}
	if id := cfg.Identity; id != nil {
		// This workload's certificate, for the By= of x-forwarded-client-cert
		// and the sidecar's node metadata; the listeners and clusters read
		// the same files for their handshakes.
		s.identity, err = mesh.NewCertificate(id.Cert, id.Key, s.log.Named("identity"))
		if err != nil {
			up.Close()
			return nil, fmt.Errorf("identity: %w", err)
		}
	}
	s.configuring.Store(up)
	defer s.configuring.Store(nil)
	node := nodeFor(cfg, s.identity, os.Getenv, os.Environ)
	s.wasm, err = newWasmEnv(context.Background(), cfg, s.reg, s.log.Named("wasm"), clusterCalls(s.cluster), node)
	if err != nil {
		up.Close()
		return nil, err
	}
	s.wasm.book.apply = s.applyFetched
	s.plugins, err = newPluginSet(context.Background(), cfg, s.wasm, s.log.Named("plugins"))
	if err != nil {
		up.Close()
		s.wasm.close()
		return nil, err
	}
	s.registerPluginMetrics()
	snap, err := s.newSnapshot(cfg, up, s.plugins)
	if err != nil {
		up.Close()
		s.plugins.close()
		s.wasm.close()
		return nil, err
	}
	s.snap.Store(snap)
	close(s.built)
	return s, nil
}

// cluster resolves a cluster for http_call and grpc_call: the current
// snapshot's, else (while plugins configure, at start or on a reload that
// adds the cluster) the generation being built.
func (s *Server) cluster(name string) *upstream.Cluster {
	if snap := s.snap.Load(); snap != nil {
		if c := snap.Upstream.Cluster(name); c != nil {
			return c
		}
	}
	if up := s.configuring.Load(); up != nil {
		return up.Cluster(name)
	}
	return nil
}

// Registry exposes the metrics registry (for tests and embedding).
func (s *Server) Registry() *stats.Registry { return s.reg }

// Start opens the listeners and the admin API, and starts watching the
// config file when the config asks for it.
func (s *Server) Start() error {
	access := s.opts.Access
	if access == nil && !s.cfg.AccessLog.Disabled {
		access = s.log.Named("access")
		if s.cfg.AccessLog.Path != "" || s.opts.Stderr != nil {
			a, err := newAccessLog(s.cfg.AccessLog, s.opts.Stderr)
			if err != nil {
				return err
			}
			s.accessLog, access = a, a.log
		}
	}
	s.conns = listen.NewConnLimit(s.cfg.Server.MaxConnections, s.reg, s.log.Named("listen"))
	s.log.Info("data-plane cap", zap.Int("max_connections", s.conns.Max()))
	for _, lc := range s.cfg.Listeners {
		if tcpListener(lc) {
			l, err := s.startTCP(lc, access)
			if err != nil {
				s.abortStart()
				return err
			}
			s.tcpListeners = append(s.tcpListeners, l)
			s.log.Info("listening", zap.String("listener", lc.Name), zap.String("address", l.Addr().String()), zap.Strings("protocols", lc.Protocols), zap.String("cluster", lc.Cluster))
			continue
		}
		h := proxy.NewConnectionManager(lc.Name, &s.snap, &s.streamIDs, s.log.Named("proxy"), access)
		h.Direction = lc.Direction
		h.Mirrors = s.mirrors
		l, err := listen.HTTP(lc, h, func(v string) { h.AltSvc = v }, s.log.Named("listen"), listen.Guards{Conns: s.conns, Stats: s.reg})
		if err != nil {
			s.abortStart()
			return err
		}
		l.Serve()
		s.listeners = append(s.listeners, l)
		s.log.Info("listening", zap.String("listener", lc.Name), zap.String("address", l.Addr().String()), zap.Strings("protocols", lc.Protocols))
	}
	if !s.cfg.Admin.Disabled {
		a, err := admin.Start(s.cfg.Admin.Address, s, s.reg, s.log.Named("admin"))
		if err != nil {
			s.abortStart()
			return fmt.Errorf("admin listener %s: %w", s.cfg.Admin.Address, err)
		}
		s.admin = a
	}
	if s.cfg.Server.WatchConfig == nil || *s.cfg.Server.WatchConfig {
		s.stopWatch = make(chan struct{})
		s.watchDone = make(chan struct{})
		go s.watch()
	}
	s.ready.Store(true)
	return nil
}

// abortStart undoes a Start that failed half-way.
func (s *Server) abortStart() {
	s.closeListeners(context.Background())
	s.accessLog.close()
	s.accessLog = nil
}

func tcpListener(l config.Listener) bool {
	for _, p := range l.Protocols {
		if p == "tcp" {
			return true
		}
	}
	return false
}

// ListenerAddr returns the bound address of a listener by name ("" if none).
func (s *Server) ListenerAddr(name string) string {
	for _, l := range s.listeners {
		if l.Name == name {
			return l.Addr().String()
		}
	}
	for _, l := range s.tcpListeners {
		if l.Name == name {
			return l.Addr().String()
		}
	}
	return ""
}

// AdminAddr is the bound admin address ("" when disabled).
func (s *Server) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.Addr().String()
}

// Reload re-reads the config file and swaps in routes, clusters and
// plugins atomically. A bad file is refused with the same errors as
// `sluice validate`, and the old config keeps serving. Listener, admin and
// mode changes need a restart; they are reported, not applied.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.reloadLocked()
	var partial *PluginsRefused
	if errors.As(err, &partial) {
		s.reloads.Inc()
		return err
	}
	if err != nil {
		s.reloadFailure.Inc()
		s.log.Error("config reload refused; the old config keeps serving", zap.Error(err))
		return err
	}
	s.reloads.Inc()
	return nil
}

func (s *Server) reloadLocked() error {
	start := time.Now()
	stamp, _ := stampOf(s.opts.ConfigPath)
	cfg, err := config.LoadWithMode(s.opts.ConfigPath, s.opts.Mode)
	if err != nil {
		return err
	}
	if changed := config.RestartNeeded(s.cfg, cfg); len(changed) > 0 {
		s.log.Warn("config changes that need a restart were not applied", zap.Strings("settings", changed))
	}
	old := s.snap.Load()
	// Clusters first: the new plugins may call out while they configure.
	up, err := old.Upstream.Rebuild(cfg.Clusters)
	if err != nil {
		return fmt.Errorf("clusters: %w", err)
	}
	s.configuring.Store(up)
	defer s.configuring.Store(nil)
	plugins, err := s.plugins.rebuild(context.Background(), cfg)
	if err != nil {
		up.Close()
		return err
	}
	snap, err := s.newSnapshot(cfg, up, plugins)
	if err != nil {
		up.Close()
		plugins.closeNew(s.plugins)
		return err
	}
	s.snap.Store(snap)
	oldPlugins, oldCfg := s.plugins, s.cfg
	s.plugins, s.cfg, s.cfgStamp = plugins, cfg, stamp
	s.wasm.book.forget(plugins.byName)
	// In-flight requests finish on the old snapshot; its clusters and
	// plugins are closed once they have had the drain time to do so.
	s.retire(func() { oldPlugins.closeReplaced(plugins) })
	s.closer.after(s.drainTimeout(), old.Upstream.Close)
	changes, fields := reloadSummary(oldCfg, cfg)
	took := time.Since(start)
	s.log.Info("config reloaded in "+took.Round(time.Millisecond).String()+": "+changes,
		append(fields, zap.String("path", s.opts.ConfigPath), zap.Duration("took", took))...)
	if len(plugins.refused) > 0 {
		return &PluginsRefused{Plugins: plugins.refused}
	}
	return nil
}

// PluginsRefused is a reload that was applied except for plugins whose
// new version failed to load: each keeps its last good version (or, new,
// follows its failure policy). /plugins shows them.
type PluginsRefused struct{ Plugins []string }

func (e *PluginsRefused) Error() string {
	return "config applied, except: " + strings.Join(e.Plugins, "; ") + " (the last good version keeps serving; see /plugins)"
}

func (s *Server) drainTimeout() time.Duration {
	if d := s.cfg.Server.DrainTimeout.D(); d > 0 {
		return d
	}
	return 15 * time.Second
}

// ReloadPlugins re-reads every plugin's module (hot load on demand).
func (s *Server) ReloadPlugins() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	plugins, err := s.plugins.reloadModules(context.Background())
	if err != nil {
		return err
	}
	if plugins == s.plugins {
		return nil
	}
	old := s.snap.Load()
	snap, err := s.newSnapshot(s.cfg, old.Upstream, plugins)
	if err != nil {
		plugins.closeNew(s.plugins)
		return err
	}
	s.snap.Store(snap)
	oldPlugins := s.plugins
	s.plugins = plugins
	s.retire(func() { oldPlugins.closeReplaced(plugins) })
	var changed []string
	for name, e := range plugins.byName {
		if oldPlugins.byName[name] != e {
			changed = append(changed, name)
		}
	}
	sort.Strings(changed)
	took := time.Since(start)
	s.log.Info("plugin modules reloaded in "+took.Round(time.Millisecond).String()+": plugins "+namedChanges{changed: changed}.String(),
		zap.Strings("plugins_changed", changed), zap.Duration("took", took))
	return nil
}

// Ready reports whether the server is serving.
func (s *Server) Ready() bool { return s.ready.Load() }

// ConfigJSON is the effective config for the admin API.
func (s *Server) ConfigJSON() ([]byte, error) {
	return s.snap.Load().Config.JSON()
}

// Plugins is the admin /plugins dump.
func (s *Server) Plugins() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plugins.status()
}

// Clusters is the admin /clusters dump.
func (s *Server) Clusters() any { return s.snap.Load().Upstream.Snapshot() }

// Shutdown stops accepting, lets in-flight requests finish up to the drain
// timeout (or ctx, whichever ends first), then releases everything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	if s.stopWatch != nil {
		close(s.stopWatch)
		<-s.watchDone
	}
	ctx, cancel := context.WithTimeout(ctx, s.drainTimeout())
	defer cancel()
	err := s.closeListeners(ctx)
	if s.admin != nil {
		s.admin.Close(ctx)
	}
	// The drained requests' lines are written out.
	s.accessLog.close()
	// Copies still in flight are abandoned: nobody waits for a shadow.
	s.mirrors.Close()
	s.wasm.book.stop() // before the lock: a finishing fetch takes it
	s.closer.shutdown()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Load().Upstream.Close()
	s.plugins.close()
	s.wasm.close()
	return err
}

func (s *Server) closeListeners(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.listeners)+len(s.tcpListeners))
	for i, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Shutdown(ctx)
		}()
	}
	for i, l := range s.tcpListeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[len(s.listeners)+i] = l.Shutdown(ctx)
		}()
	}
	wg.Wait()
	s.listeners, s.tcpListeners = nil, nil
	return errors.Join(errs...)
}

// watch polls the config file and reloads when it changes. Polling keeps
// the dependency list short and also catches editors that replace the file.
func (s *Server) watch() {
	defer close(s.watchDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stopWatch:
			return
		case <-t.C:
		}
		stamp, err := stampOf(s.opts.ConfigPath)
		if err != nil {
			continue
		}
		s.mu.Lock()
		changed := stamp != s.cfgStamp
		s.mu.Unlock()
		if changed {
			if s.Reload() != nil {
				// Remember the bad version so it is not retried every second.
				s.mu.Lock()
				s.cfgStamp = stamp
				s.mu.Unlock()
			}
		}
		s.pollPlugins()
	}
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{st.ModTime(), st.Size()}, nil
}
