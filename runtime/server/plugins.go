package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/pluginsource"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/wasmfilter"
)

// loadedPlugin is one started version of a plugin: a filter factory whose
// instances have run vm_start and configure.
type loadedPlugin interface {
	filter.Factory
	// Close waits for the streams on this version to end, then frees its
	// instances.
	Close()
	// Status is the admin /plugins entry.
	Status() any
}

// pluginEntry is a plugin as configured and the version serving it.
type pluginEntry struct {
	cfg    config.Plugin
	sha256 string
	stamp  fileStamp
	p      loadedPlugin
}

// pluginSet is the plugins of one config generation. Entries whose config
// and module did not change are shared with the next generation, so a
// reload does not restart them.
type pluginSet struct {
	env    *wasmEnv
	log    *zap.Logger
	byName map[string]*pluginEntry
	// refused lists the plugins whose new version failed to load in the
	// rebuild that made this set (each kept its last good version or
	// stands in), for the reload's answer.
	refused []string
	// starting: the set a process starts from, where a local module that
	// fails to load refuses the config instead of standing in.
	starting bool
}

func newPluginSet(ctx context.Context, cfg *config.Config, env *wasmEnv, log *zap.Logger) (*pluginSet, error) {
	empty := &pluginSet{env: env, log: log, byName: map[string]*pluginEntry{}, starting: true}
	return empty.rebuild(ctx, cfg)
}

// rebuild returns the set for cfg, reusing unchanged entries of ps.
func (ps *pluginSet) rebuild(ctx context.Context, cfg *config.Config) (*pluginSet, error) {
	next := &pluginSet{env: ps.env, log: ps.log, byName: map[string]*pluginEntry{}}
	for i, pc := range cfg.Plugins {
		e, loadErr, err := ps.entryFor(ctx, pc)
		if err != nil {
			next.closeNew(ps)
			return nil, pluginError(cfg, i, err)
		}
		if loadErr != nil {
			next.refused = append(next.refused, fmt.Sprintf("plugin %q: %v", pc.Name, loadErr))
		}
		next.byName[pc.Name] = e
	}
	next.releaseLoadMemory()
	return next, nil
}

// entryFor returns the entry serving pc in the next generation. Only a
// local module that cannot be read, or that fails to load at start, is an
// error (the config is refused, as `sluice validate` would); otherwise a
// failed load keeps the last good version or stands in for the plugin,
// and loadErr says why.
func (ps *pluginSet) entryFor(ctx context.Context, pc config.Plugin) (e *pluginEntry, loadErr, err error) {
	old := ps.byName[pc.Name]
	src, err := pluginsource.Parse(pc.Wasm, pc.SHA256, pc.PullPolicy)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin %q: %w", pc.Name, err)
	}
	if src.Remote() {
		return ps.remoteEntry(ctx, pc, src, old), nil, nil
	}
	module, sha, stamp, err := ps.env.readLocalModule(src)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin %q: %w", pc.Name, err)
	}
	if old != nil && old.sha256 == sha && reflect.DeepEqual(old.cfg, pc) {
		ps.env.book.confirmed(pc.Name) // what is wanted is what serves
		return old, nil, nil
	}
	p, err := ps.env.load(ctx, pc, module, sha, "")
	if err != nil {
		if ps.starting {
			return nil, nil, fmt.Errorf("plugin %q (%s): %w", pc.Name, pc.Wasm, err)
		}
		ps.env.book.failed(pc.Name, src, loadCause(err), err, old != nil && old.loaded())
		return ps.keepOrStandIn(pc, old, err.Error()), err, nil
	}
	ps.log.Info("plugin loaded", zap.String("plugin", pc.Name), zap.String("wasm", pc.Wasm), zap.String("sha256", sha[:12]))
	ps.env.book.loaded(pc.Name, src, sha, "")
	return &pluginEntry{cfg: pc, sha256: sha, stamp: stamp, p: p}, nil, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// releaseLoadMemory gives back what the loads just done no longer need:
// the embedded built-in module's bytes (faulted back in from the binary by
// the next load) and the Go heap a compile left behind (wasmEnv.giveBackHeap).
func (ps *pluginSet) releaseLoadMemory() {
	for _, e := range ps.byName {
		if builtinName(e.cfg.Wasm) != "" {
			plugins.ReleaseModulePages()
			break
		}
	}
	ps.env.giveBackHeap()
}

// reloadModules re-reads every file-backed module and restarts the plugins
// whose bytes changed. It returns ps itself when nothing changed.
func (ps *pluginSet) reloadModules(ctx context.Context) (*pluginSet, error) {
	next := &pluginSet{env: ps.env, log: ps.log, byName: map[string]*pluginEntry{}}
	changed := false
	for name, e := range ps.byName {
		if src, err := pluginsource.Parse(e.cfg.Wasm, e.cfg.SHA256, e.cfg.PullPolicy); err == nil && src.Remote() {
			// Fetched again when its policy says so, or when it never loaded.
			if src.Policy == pluginsource.Always || !e.loaded() {
				ps.env.book.fetch(e.cfg, src, ps.env.sources, e.loaded())
			}
			next.byName[name] = e
			continue
		}
		module, stamp, err := ps.env.readModule(e.cfg.Wasm)
		if err != nil {
			next.closeNew(ps)
			return nil, fmt.Errorf("plugin %q: %w", name, err)
		}
		sha := sha256Hex(module)
		if sha == e.sha256 {
			e.stamp = stamp
			next.byName[name] = e
			continue
		}
		p, err := ps.env.load(ctx, e.cfg, module, sha, "")
		if err != nil {
			next.closeNew(ps)
			src, _ := pluginsource.Parse(e.cfg.Wasm, e.cfg.SHA256, e.cfg.PullPolicy)
			ps.env.book.failed(name, src, loadCause(err), err, e.loaded())
			return nil, fmt.Errorf("plugin %q (%s): new module refused, the old one stays: %w", name, e.cfg.Wasm, err)
		}
		ps.log.Info("plugin reloaded", zap.String("plugin", name), zap.String("sha256", sha[:12]))
		src, _ := pluginsource.Parse(e.cfg.Wasm, e.cfg.SHA256, e.cfg.PullPolicy)
		ps.env.book.loaded(name, src, sha, "")
		next.byName[name] = &pluginEntry{cfg: e.cfg, sha256: sha, stamp: stamp, p: p}
		changed = true
	}
	next.releaseLoadMemory()
	if !changed {
		return ps, nil
	}
	return next, nil
}

// modulesChanged reports whether a watched .wasm file moved since loading.
func (ps *pluginSet) modulesChanged() bool {
	for _, e := range ps.byName {
		path := modulePath(e.cfg.Wasm)
		if path == "" {
			continue
		}
		if st, err := stampOf(path); err == nil && st != e.stamp {
			return true
		}
	}
	return false
}

func (ps *pluginSet) factories() map[string]filter.Factory {
	m := make(map[string]filter.Factory, len(ps.byName))
	for name, e := range ps.byName {
		m[name] = e.p
	}
	return m
}

// closeNew closes the entries of ps that old does not share: the ones a
// failed rebuild made.
func (ps *pluginSet) closeNew(old *pluginSet) {
	for name, e := range ps.byName {
		if old == nil || old.byName[name] != e {
			e.p.Close()
		}
	}
}

// closeReplaced closes the entries of ps that next no longer uses.
func (ps *pluginSet) closeReplaced(next *pluginSet) {
	for name, e := range ps.byName {
		if next.byName[name] != e {
			e.p.Close()
		}
	}
}

func (ps *pluginSet) close() {
	for _, e := range ps.byName {
		e.p.Close()
	}
}

// pluginStatus is one row of the admin /plugins dump: the serving
// version (sha256 is its module's digest, "" while none has loaded), its
// state and its lifecycle record.
type pluginStatus struct {
	Name    string `json:"name"`
	Wasm    string `json:"wasm"`
	SHA256  string `json:"sha256"`
	Failure string `json:"failure"`
	// State is "serving"; "failing" (the serving version's instances
	// broke hostabi.FailingAfter times or more in a row, with no stream
	// served well since: they are replaced with backoff, and its routes
	// follow the failure policy meanwhile); "degraded" (the newest
	// version failed, the last good one serves); "fetching" or "failed"
	// (no version loaded: the failure policy answers).
	State     string `json:"state"`
	Instances int    `json:"instances"`
	// ConsecutiveFailures counts the failures in a row of a failing
	// plugin.
	ConsecutiveFailures int `json:"consecutive_failures,omitempty"`
	pluginHealth
	Runtime any `json:"runtime,omitempty"`
}

func (ps *pluginSet) status() []pluginStatus {
	out := make([]pluginStatus, 0, len(ps.byName))
	for name, e := range ps.byName {
		h := ps.env.book.view(name)
		st := pluginStatus{Name: name, Wasm: e.cfg.Wasm, SHA256: e.sha256, Failure: e.cfg.Failure, Runtime: e.p.Status(), pluginHealth: h}
		rs, _ := st.Runtime.(hostabi.Stats)
		switch {
		case e.loaded() && rs.Failing:
			st.State, st.ConsecutiveFailures = "failing", rs.ConsecutiveFailures
		case e.loaded() && h.LastError == "":
			st.State = "serving"
		case e.loaded():
			st.State = "degraded"
		case h.Fetching:
			st.State = "fetching"
		default:
			st.State = "failed"
		}
		st.Instances = rs.Instances
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// builtinName returns NAME for "builtin:NAME", "" otherwise.
func builtinName(wasm string) string {
	if name, ok := strings.CutPrefix(wasm, "builtin:"); ok {
		return name
	}
	return ""
}

// pollPlugins reloads plugins whose .wasm file changed on disk.
func (s *Server) pollPlugins() {
	s.mu.Lock()
	changed := s.plugins.modulesChanged()
	s.mu.Unlock()
	if changed {
		if err := s.ReloadPlugins(); err != nil {
			s.log.Error("plugin reload refused; the old version keeps serving", zap.Error(err))
			// Note the new stamps so a bad file is not retried every second.
			s.mu.Lock()
			for _, e := range s.plugins.byName {
				if st, err := stampOf(modulePath(e.cfg.Wasm)); err == nil && modulePath(e.cfg.Wasm) != "" {
					e.stamp = st
				}
			}
			s.mu.Unlock()
		}
	}
}

// readLocalModule reads a file or built-in source as readModule does and
// hashes it once: the digest is checked against the plugin's sha256 when
// it pins one, and returned for the load. Serving and validate's dry run
// read local modules through it alike.
func (e *wasmEnv) readLocalModule(src pluginsource.Source) ([]byte, string, fileStamp, error) {
	module, stamp, err := e.readModule(src.URL)
	if err != nil {
		return nil, "", stamp, err
	}
	sha := sha256Hex(module)
	if src.SHA256 != "" && sha != src.SHA256 {
		return nil, "", stamp, fmt.Errorf("%s: the module's sha256 is %s, not %s", src.URL, sha, src.SHA256)
	}
	return module, sha, stamp, nil
}

// readModule returns the module a plugin's wasm key names: for
// "builtin:NAME", the built-in's embedded module. A file must
// be a regular file within [wasm] max_module_bytes, and its structure
// must pass hostabi.CheckModule (bounded in memory): so a bad file on
// disk is refused here, before anything compiles it, and a hot load keeps
// the old version.
func (e *wasmEnv) readModule(wasm string) ([]byte, fileStamp, error) {
	if name := builtinName(wasm); name != "" {
		m, err := builtinModule(name)
		return m, fileStamp{}, err
	}
	path := modulePath(wasm)
	stamp, err := stampOf(path)
	if err != nil {
		return nil, fileStamp{}, err
	}
	b, err := readModuleFile("wasm", path, e.maxModuleBytes)
	return b, stamp, err
}

// modulePath is the file of a path or file:// plugin source, "" for
// built-in and remote ones.
func modulePath(wasm string) string {
	src, err := pluginsource.Parse(wasm, "", "")
	if err != nil || src.Kind != pluginsource.File {
		return ""
	}
	return src.Path
}

// readModuleFile reads and checks a plugin's .wasm file, as the proxy
// will load it; `sluice validate` runs it too (CheckPluginModules). Errors
// start with key unless it is "".
func readModuleFile(key, path string, limit int64) ([]byte, error) {
	b, err := config.ReadFile(key, path, limit)
	if err != nil {
		return nil, err
	}
	if err := hostabi.CheckModule(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// pluginError places a plugin's load failure in the config file: a
// refused configuration at the plugin's config (at the unknown key when
// the plugin names one, as the built-ins do), anything else at its wasm
// key. `sluice run` and `sluice validate` print the same line for it.
func pluginError(cfg *config.Config, i int, err error) error {
	pc := cfg.Plugins[i]
	key := fmt.Sprintf("plugins[%d].wasm", i)
	msg := err.Error()
	if refused := (*hostabi.RefusedError)(nil); errors.As(err, &refused) {
		// The refusal alone: hostabi's "loading plugin" wrapping repeats
		// what the key already says.
		msg = fmt.Sprintf("plugin %q (%s): %v", pc.Name, pc.Wasm, refused)
		switch {
		case refused.Callback == "proxy_on_vm_start" && pc.VMConfigRaw != "":
			key = fmt.Sprintf("plugins[%d].vm_config_raw", i)
		case refused.Callback == "proxy_on_vm_start":
			key = fmt.Sprintf("plugins[%d].vm_config", i)
		case pc.ConfigRaw != "":
			key = fmt.Sprintf("plugins[%d].config_raw", i)
		default:
			key = fmt.Sprintf("plugins[%d].config", i)
			if m := unknownField.FindStringSubmatch(refused.Reason); m != nil {
				key += "." + m[1]
			}
		}
	}
	return &config.Error{Problems: []config.Problem{cfg.Problem(key, msg)}}
}

// unknownField finds the key in encoding/json's refusal of one, which is
// how the built-ins (and most Go filters) word it.
var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// CheckPlugins loads every plugin of cfg as `sluice run` would, in a dry
// run, so that what validate passes, run does not refuse: each module is
// read and checked, compiled (through the compilation cache), and its
// vm_start and configure run; then all of it is closed. Nothing listens
// and nothing reaches an upstream: an http_call a plugin makes from
// configure is accepted for a known cluster and answered as a failed
// call, never dispatched, and shared data stays in memory even with a
// Redis store. Every plugin is tried; problems carry file, line and key.
func CheckPlugins(ctx context.Context, cfg *config.Config) error {
	dry := *cfg
	dry.SharedStore.Kind = "" // no Redis connection for a dry run
	// node.* as run would answer it, less what the identity's
	// certificate adds (validate does not read it).
	node := nodeFor(cfg, nil, os.Getenv, os.Environ)
	env, err := newWasmEnv(ctx, &dry, stats.NewRegistry(), zap.NewNop(), dryRunCalls(cfg), node)
	if err != nil {
		return err
	}
	defer env.close()
	var problems []config.Problem
	for i, pc := range cfg.Plugins {
		src, err := pluginsource.Parse(pc.Wasm, pc.SHA256, pc.PullPolicy)
		if err != nil {
			problems = append(problems, cfg.Problem(fmt.Sprintf("plugins[%d].wasm", i), err.Error()))
			continue
		}
		if src.Remote() {
			// Checked when it arrives: a source that is down is no
			// config error, and run serves without it meanwhile.
			continue
		}
		module, sha, _, err := env.readLocalModule(src)
		if err != nil {
			problems = append(problems, cfg.Problem(fmt.Sprintf("plugins[%d].wasm", i), err.Error()))
			continue
		}
		p, err := env.load(ctx, pc, module, sha, "")
		if err != nil {
			var ce *config.Error
			errors.As(pluginError(cfg, i, err), &ce)
			problems = append(problems, ce.Problems...)
			continue
		}
		p.Close()
	}
	if len(problems) > 0 {
		return &config.Error{Problems: problems}
	}
	return nil
}

// dryRunCalls answers CheckPlugins' http_calls: a cluster the config has
// fails the call without dispatching it, an unknown one is refused as
// `run` would refuse it.
func dryRunCalls(cfg *config.Config) func(string) (wasmfilter.ClusterCall, bool) {
	return func(name string) (wasmfilter.ClusterCall, bool) {
		for _, c := range cfg.Clusters {
			if c.Name == name {
				return func(context.Context, *wasmfilter.CallRequest) (wasmfilter.CallResponse, error) {
					return nil, errors.New("sluice validate: a dry run dispatches no http_call")
				}, true
			}
		}
		return nil, false
	}
}
