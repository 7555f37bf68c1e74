package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/pluginsource"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/wasmsource"
)

// This file is the plugin lifecycle beyond local files: remote modules
// fetched in the background (wasmsource), the versions that keep serving
// when a new one fails, and the record of each plugin /plugins shows.
//
// The rules: a plugin whose new version cannot be fetched, verified,
// compiled or configured keeps its last good version; one that never
// loaded follows its failure policy (open: skipped; closed: 503 on its
// routes); the rest of the config serves either way. At start, only a
// local module that fails refuses the config (as `sluice validate` would);
// a remote source that is down never does.

// newSources makes the fetcher of remote modules: cached under
// [wasm] cache_dir/modules, or in memory when the cache is off.
func newSources(cfg *config.Config) (*wasmsource.Fetcher, error) {
	dir := ""
	if d := cfg.Wasm.CacheDir; d != "" && d != "off" && d != "-" {
		dir = filepath.Join(d, "modules")
	}
	opts := wasmsource.Options{CacheDir: dir, InsecureRegistries: cfg.Wasm.InsecureRegistries, MaxModuleBytes: int64(cfg.Wasm.MaxModuleBytes)}
	if testSourceOptions != nil {
		testSourceOptions(&opts)
	}
	return wasmsource.New(opts)
}

// testSourceOptions lets tests trust their TLS server and shorten the
// backoff; nil in the product.
var testSourceOptions func(*wasmsource.Options)

// unloaded stands for a plugin with no version loaded yet (its module is
// being fetched, or failed): every stream gets its failure policy.
type unloaded struct {
	name     string
	failOpen bool
	why      string
}

func (u *unloaded) Name() string   { return u.name }
func (u *unloaded) FailOpen() bool { return u.failOpen }
func (u *unloaded) NewFilter(context.Context, filter.Stream) (filter.HTTPFilter, error) {
	return nil, fmt.Errorf("plugin %q has no version loaded: %s", u.name, u.why)
}
func (u *unloaded) Close()      {}
func (u *unloaded) Status() any { return nil }

func (e *pluginEntry) loaded() bool {
	_, ok := e.p.(*unloaded)
	return !ok
}

// pluginHealth is one plugin's lifecycle record, kept across config
// generations for as long as a plugin of that name is configured.
type pluginHealth struct {
	Source   string            `json:"source"`
	Digest   string            `json:"digest,omitempty"`
	Layout   string            `json:"layout,omitempty"`
	LoadedAt *time.Time        `json:"load_time,omitempty"`
	Fetching bool              `json:"fetching,omitempty"`
	Failures map[string]uint64 `json:"failures"`
	// LastError is the newest failure; it is cleared by the next version
	// that loads (or confirms the serving one).
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_time,omitempty"`
}

// fetchJob is a background fetch of one plugin config's module.
type fetchJob struct {
	cfg    config.Plugin
	cancel context.CancelFunc
	// again: asked for while under way; the source may have changed since
	// this fetch read it, so fetch once more when it is done.
	again bool
}

// pluginBook holds every plugin's record and the background fetches.
type pluginBook struct {
	reg *stats.Registry
	log *zap.Logger

	mu      sync.Mutex
	byName  map[string]*pluginHealth
	fetches map[string]*fetchJob // by plugin name

	ctx    context.Context // ends at shutdown: fetches stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// apply installs a fetched module (Server.applyFetched).
	apply func(config.Plugin, wasmsource.Module)
}

func newPluginBook(reg *stats.Registry, log *zap.Logger) *pluginBook {
	ctx, cancel := context.WithCancel(context.Background())
	return &pluginBook{reg: reg, log: log, byName: map[string]*pluginHealth{}, fetches: map[string]*fetchJob{}, ctx: ctx, cancel: cancel}
}

func (b *pluginBook) get(name string) *pluginHealth {
	h := b.byName[name]
	if h == nil {
		h = &pluginHealth{Failures: map[string]uint64{}}
		b.byName[name] = h
	}
	return h
}

// loaded records the version now serving a plugin.
func (b *pluginBook) loaded(name string, src pluginsource.Source, digest, layout string) {
	now := time.Now()
	b.mu.Lock()
	h := b.get(name)
	h.Source, h.Digest, h.Layout, h.LoadedAt = src.URL, digest, layout, &now
	h.LastError, h.LastErrorAt = "", nil
	b.mu.Unlock()
	b.reg.Counter("sluice_plugin_loads_total", "Plugin versions loaded.", "plugin", name).Inc()
}

// confirmed records that the serving version is still the newest (an
// Always fetch found the same digest).
func (b *pluginBook) confirmed(name string) {
	b.mu.Lock()
	h := b.get(name)
	h.LastError, h.LastErrorAt = "", nil
	b.mu.Unlock()
}

// failed records a failure of cause (fetch, verify, compile, link,
// configure) and reports it: log, metric, /plugins.
func (b *pluginBook) failed(name string, src pluginsource.Source, cause string, err error, serving bool) {
	now := time.Now()
	b.mu.Lock()
	h := b.get(name)
	if h.Source == "" {
		h.Source = src.URL
	}
	h.Failures[cause]++
	h.LastError, h.LastErrorAt = err.Error(), &now
	b.mu.Unlock()
	b.reg.Counter("sluice_plugin_load_failures_total", "Plugin versions that could not be fetched, verified, compiled, linked or configured, by cause.", "plugin", name, "cause", cause).Inc()
	if serving {
		b.log.Error("plugin: new version failed; the last good version keeps serving", zap.String("plugin", name), zap.String("source", src.URL), zap.String("cause", cause), zap.Error(err))
	} else {
		b.log.Error("plugin: no version loaded; its routes follow its failure policy", zap.String("plugin", name), zap.String("source", src.URL), zap.String("cause", cause), zap.Error(err))
	}
}

// forget drops the records of plugins no longer configured, and stops
// their fetches.
func (b *pluginBook) forget(keep map[string]*pluginEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name := range b.byName {
		if keep[name] == nil {
			delete(b.byName, name)
		}
	}
	for name, job := range b.fetches {
		if keep[name] == nil {
			job.cancel()
			delete(b.fetches, name)
		}
	}
}

func (b *pluginBook) view(name string) pluginHealth {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := *b.get(name)
	h.Failures = make(map[string]uint64, len(h.Failures))
	for k, v := range b.byName[name].Failures {
		h.Failures[k] = v
	}
	_, h.Fetching = b.fetches[name]
	return h
}

// fetch starts fetching pc's module in the background unless the same
// config is already being fetched (a fetch for an older config of the
// plugin is stopped); the result goes to apply.
func (b *pluginBook) fetch(pc config.Plugin, src pluginsource.Source, sources *wasmsource.Fetcher, serving bool) {
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		return
	}
	if cur, ok := b.fetches[pc.Name]; ok {
		if reflect.DeepEqual(cur.cfg, pc) {
			cur.again = true
			b.mu.Unlock()
			return
		}
		cur.cancel()
	}
	ctx, cancel := context.WithCancel(b.ctx)
	job := &fetchJob{cfg: pc, cancel: cancel}
	b.fetches[pc.Name] = job
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		defer cancel()
		for {
			m, err := sources.FetchRetry(ctx, src, func(attempt int, err error) {
				if ctx.Err() != nil {
					return // stopped: not the source's failure
				}
				cause := string(wasmsource.CauseFetch)
				var fe *wasmsource.Error
				if errors.As(err, &fe) {
					cause = string(fe.Cause)
				}
				b.failed(pc.Name, src, cause, fmt.Errorf("attempt %d: %w", attempt, err), serving)
			})
			if err == nil && ctx.Err() == nil && b.apply != nil {
				b.apply(pc, m)
			}
			b.mu.Lock()
			again := job.again && ctx.Err() == nil
			job.again = false
			if !again && b.fetches[pc.Name] == job {
				delete(b.fetches, pc.Name)
			}
			b.mu.Unlock()
			if !again {
				return
			}
		}
	}()
}

// stop ends the background fetches and waits for them.
func (b *pluginBook) stop() {
	b.cancel()
	b.wg.Wait()
}

// loadCause names the step of a load that failed, from hostabi's error.
func loadCause(err error) string {
	s := err.Error()
	var imports *hostabi.ImportError
	switch {
	case errors.As(err, &imports) || strings.Contains(s, "instantiating"):
		return "link"
	case strings.Contains(s, "proxy_on_") || strings.Contains(s, "_start") || strings.Contains(s, "_initialize") ||
		strings.HasPrefix(s, "config:") || strings.HasPrefix(s, "vm_config:"):
		return "configure"
	}
	return "compile"
}

// remoteEntry is the entry for a plugin whose module is fetched: the
// serving one when nothing changed, a cached module loaded now, or (while
// the fetch runs) the last good version or a stand-in that follows the
// failure policy. It never fails: a remote source never refuses a config.
func (ps *pluginSet) remoteEntry(ctx context.Context, pc config.Plugin, src pluginsource.Source, old *pluginEntry) *pluginEntry {
	book, sources := ps.env.book, ps.env.sources
	if old != nil && old.loaded() && reflect.DeepEqual(old.cfg, pc) {
		book.confirmed(pc.Name)
		if src.Policy == pluginsource.Always {
			book.fetch(pc, src, sources, true)
		}
		return old
	}
	if m, ok := sources.Cached(src); ok {
		p, err := ps.env.loadFetched(ctx, pc, m.Bytes, m.Digest())
		if err == nil {
			ps.log.Info("plugin loaded from the module cache", zap.String("plugin", pc.Name), zap.String("wasm", pc.Wasm), zap.String("digest", m.Digest()))
			book.loaded(pc.Name, src, m.Digest(), m.Layout)
			if src.Policy == pluginsource.Always {
				book.fetch(pc, src, sources, true)
			}
			return &pluginEntry{cfg: pc, sha256: m.SHA256, p: p}
		}
		book.failed(pc.Name, src, loadCause(err), err, old != nil && old.loaded())
		if src.Policy != pluginsource.Always {
			// The cached module will not get better by itself.
			return ps.keepOrStandIn(pc, old, "its cached module failed to load: "+err.Error())
		}
	}
	book.fetch(pc, src, sources, old != nil && old.loaded())
	return ps.keepOrStandIn(pc, old, "fetching "+pc.Wasm)
}

// loadFetched loads a module that came from a remote source after the
// structural check local files get when they are read (bounded in memory,
// before anything compiles it). digest names it at its source.
func (e *wasmEnv) loadFetched(ctx context.Context, pc config.Plugin, module []byte, digest string) (loadedPlugin, error) {
	if err := hostabi.CheckModule(module); err != nil {
		return nil, err
	}
	return e.load(ctx, pc, module, sha256Hex(module), digest)
}

// keepOrStandIn keeps the last good version of a plugin whose new one
// failed or is on its way, or stands in for a plugin that has none.
func (ps *pluginSet) keepOrStandIn(pc config.Plugin, old *pluginEntry, why string) *pluginEntry {
	if old != nil && (old.loaded() || reflect.DeepEqual(old.cfg, pc)) {
		return old
	}
	return &pluginEntry{cfg: pc, p: &unloaded{name: pc.Name, failOpen: pc.Failure == "open", why: why}}
}

// applyFetched installs a module a background fetch brought, if the
// plugin's config is still the one it was fetched for: the new version
// loads beside the serving one and replaces it in a new snapshot; if it
// fails to load, the serving one stays.
func (s *Server) applyFetched(pc config.Plugin, m wasmsource.Module) {
	select {
	case <-s.built:
	case <-s.wasm.book.ctx.Done():
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plugins == nil || s.wasm.book.ctx.Err() != nil {
		return
	}
	cur := s.plugins.byName[pc.Name]
	if cur == nil || !reflect.DeepEqual(s.pluginConfig(pc.Name), pc) {
		return // a reload changed or removed the plugin meanwhile
	}
	src, _ := pluginsource.Parse(pc.Wasm, pc.SHA256, pc.PullPolicy)
	if cur.loaded() && cur.sha256 == m.SHA256 && reflect.DeepEqual(cur.cfg, pc) {
		s.wasm.book.confirmed(pc.Name)
		return
	}
	p, err := s.wasm.loadFetched(context.Background(), pc, m.Bytes, m.Digest())
	s.wasm.giveBackHeap()
	if err != nil {
		s.wasm.book.failed(pc.Name, src, loadCause(err), err, cur.loaded())
		return
	}
	next := &pluginSet{env: s.plugins.env, log: s.plugins.log, byName: make(map[string]*pluginEntry, len(s.plugins.byName))}
	for name, e := range s.plugins.byName {
		next.byName[name] = e
	}
	next.byName[pc.Name] = &pluginEntry{cfg: pc, sha256: m.SHA256, p: p}
	old := s.snap.Load()
	snap, err := s.newSnapshot(s.cfg, old.Upstream, next)
	if err != nil {
		p.Close()
		s.wasm.book.failed(pc.Name, src, "configure", err, cur.loaded())
		return
	}
	s.snap.Store(snap)
	s.plugins = next
	s.wasm.book.loaded(pc.Name, src, m.Digest(), m.Layout)
	s.log.Info("plugin loaded", zap.String("plugin", pc.Name), zap.String("wasm", pc.Wasm), zap.String("digest", m.Digest()), zap.Bool("cached", m.Cached))
	s.retire(cur.p.Close)
}

// retireGrace is how long a replaced plugin version keeps taking new
// streams. A request that loaded the old snapshot just before the swap
// builds its chain from that snapshot's versions; were one of them
// already closed, the proxy would take the new snapshot's version for
// that plugin alone, and the request would run plugins of two
// generations. The grace makes that window a second wide instead of
// the time a swap takes.
const retireGrace = time.Second

// retire runs closeFn (closing replaced plugin versions, which then drain
// their streams) after retireGrace, or at once when the server shuts down.
func (s *Server) retire(closeFn func()) {
	s.closer.after(retireGrace, closeFn)
}

// pluginConfig is the current config of the plugin named name.
func (s *Server) pluginConfig(name string) config.Plugin {
	for _, pc := range s.cfg.Plugins {
		if pc.Name == name {
			return pc
		}
	}
	return config.Plugin{}
}
