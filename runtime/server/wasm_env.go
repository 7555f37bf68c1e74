package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/sharedstore"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/upstream"
	"github.com/sluice-proxy/sluice/runtime/wasmfilter"
	"github.com/sluice-proxy/sluice/runtime/wasmsource"
)

// wasmEnv is the process-wide Wasm host: one engine, and the shared store,
// queues and metrics that every plugin version shares across reloads.
//
// The engine (wazero's runtimes, the host modules) is made by the first
// plugin load, so a config without plugins costs no Wasm memory at all.
type wasmEnv struct {
	log       *zap.Logger
	engineCfg hostabi.EngineConfig
	redis     *sharedstore.Redis // nil without [shared_store] kind = "redis"
	// maxModuleBytes is [wasm] max_module_bytes (a restart setting).
	maxModuleBytes int64

	// cacheDir is wazero's compilation cache ("-": none), for telling a
	// start-up whether the cache served it.
	cacheDir string

	mu     sync.Mutex
	engine *hostabi.Engine // nil until a plugin loads
	// open counts the plugin versions loaded and not yet closed, by
	// module sha256. A load of a module with versions open reuses its
	// compiled code (the engine keeps it while any version uses it) and
	// says nothing about it; once the last closes, the engine drops the
	// code and so does this map. It used to remember every module ever
	// loaded, one entry per .wasm or digest change for the process's life.
	open map[string]int

	// compiled says a load compiled a module since the last giveBackHeap.
	compiled atomic.Bool

	// sources fetches remote modules; book is every plugin's lifecycle
	// record and the fetches in flight.
	sources *wasmsource.Fetcher
	book    *pluginBook
}

// clusterCalls sends plugins' http_calls to the clusters cluster finds.
func clusterCalls(cluster func(string) *upstream.Cluster) func(string) (wasmfilter.ClusterCall, bool) {
	return func(name string) (wasmfilter.ClusterCall, bool) {
		c := cluster(name)
		if c == nil {
			return nil, false
		}
		return func(ctx context.Context, r *wasmfilter.CallRequest) (wasmfilter.CallResponse, error) {
			resp, err := c.Send(ctx, &upstream.Request{Headers: r.Headers, Body: r.Body, BodyStream: r.BodyStream,
				Trailers: r.Trailers, ProtoMajor: r.ProtoMajor}, upstream.Pick{})
			if err != nil {
				return nil, upstreamCallError{err}
			}
			return resp, nil
		}, true
	}
}

// upstreamCallError words a failed call as Envoy's router would answer it
// (wasmfilter.RouterReplier), for the gRPC stream that reports it.
type upstreamCallError struct{ err error }

func (e upstreamCallError) Error() string { return e.err.Error() }
func (e upstreamCallError) Unwrap() error { return e.err }

func (e upstreamCallError) RouterReply() string {
	switch upstream.Classify(e.err) {
	case upstream.NoHealthyUpstream:
		return "no healthy upstream"
	case upstream.ConnectFailure:
		return "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: " + rootCause(e.err)
	}
	return "upstream connect error or disconnect/reset before headers. reset reason: " + rootCause(e.err)
}

// rootCause is the innermost error's text (a dial's "connection refused"
// rather than the cluster and endpoint it came through).
func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// newWasmEnv makes the host; calls answers the plugins' http_calls
// (clusterCalls when serving, dryRunCalls for `sluice validate`).
func newWasmEnv(ctx context.Context, cfg *config.Config, reg *stats.Registry, log *zap.Logger, calls func(string) (wasmfilter.ClusterCall, bool), node *wasmfilter.Node) (*wasmEnv, error) {
	caller := &wasmfilter.WasmHTTPCaller{Lookup: calls}
	cacheDir := cfg.Wasm.CacheDir
	if cacheDir == "off" {
		cacheDir = "-"
	}
	if cacheDir != "" && cacheDir != "-" {
		if err := os.MkdirAll(filepath.Clean(cacheDir), 0o755); err != nil {
			log.Warn("wasm compilation cache unavailable; compiling every start", zap.String("dir", cacheDir), zap.Error(err))
			cacheDir = "-"
		}
	}
	env := &wasmEnv{log: log, maxModuleBytes: int64(cfg.Wasm.MaxModuleBytes), cacheDir: cacheDir, open: map[string]int{},
		book: newPluginBook(reg, log.Named("plugins"))}
	if cacheDir == "" {
		env.cacheDir = filepath.Join(os.TempDir(), "sluice-wasm-cache") // hostabi's default
	}
	var err error
	if env.sources, err = newSources(cfg); err != nil {
		return nil, err
	}
	var store hostabi.SharedStore = hostabi.NewMemoryStore()
	if cfg.SharedStore.Kind == "redis" {
		r := cfg.SharedStore.Redis
		env.redis = sharedstore.NewRedis(sharedstore.Options{Address: r.Address, Password: r.Password, DB: r.DB, Timeout: r.Timeout.D()}, reg)
		store = sharedstore.Routed{Local: store, Shared: env.redis}
		log.Info("shared data keys with a redis segment go to Redis", zap.String("address", r.Address))
	}
	env.engineCfg = hostabi.EngineConfig{
		CacheDir: cacheDir,
		Logger:   log,
		HTTP:     caller,
		Shared:   store,
		Metrics:  wasmfilter.NewWasmMetrics(reg),
		// node.* is the process's, for every context.
		Properties: node.Property,
	}
	return env, nil
}

// getEngine returns the engine, making it on first use.
func (e *wasmEnv) getEngine(ctx context.Context) (*hostabi.Engine, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.engine == nil {
		engine, err := hostabi.NewEngine(ctx, e.engineCfg)
		if err != nil {
			return nil, fmt.Errorf("wasm engine: %w", err)
		}
		e.engine = engine
	}
	return e.engine, nil
}

// load compiles and starts one plugin version: vm_start and configure must
// succeed before it serves anything. sha is the module's sha256 (hex);
// digest names the module at its source for the log of its failures
// ("": sha). Compiling a module the process has not compiled yet takes
// seconds without the compilation cache, so it is announced before and
// timed after, with whether the cache served it.
func (e *wasmEnv) load(ctx context.Context, pc config.Plugin, module []byte, sha, digest string) (loadedPlugin, error) {
	pluginCfg, err := configBytes(pc.Config, pc.ConfigRaw)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	vmCfg, err := configBytes(pc.VMConfig, pc.VMConfigRaw)
	if err != nil {
		return nil, fmt.Errorf("vm_config: %w", err)
	}
	rootID, vmID := pc.RootID, pc.VMID
	builtin := builtinName(pc.Wasm)
	if builtin != "" {
		// The built-ins are root contexts of one module, chosen by
		// root_id: a root_id of the user's own would name none of them
		// (and meant nothing while each had a module of its own).
		rootID = builtin
	}
	if builtin != "" && vmID == "" {
		// Every built-in plugin is a root context of one module, so they
		// share instances: one Go runtime per instance serves them all
		// instead of one per plugin.
		vmID = builtinVMID
	}
	engine, err := e.getEngine(ctx)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	first := e.open[sha] == 0
	e.mu.Unlock()
	start := time.Now()
	if first {
		e.log.Info(fmt.Sprintf("compiling plugin %s (%s) ...", pc.Name, megabytes(len(module))),
			zap.String("plugin", pc.Name), zap.String("wasm", pc.Wasm))
	}
	p, err := engine.Load(ctx, hostabi.PluginConfig{
		Name:           pc.Name,
		RootID:         rootID,
		VMID:           vmID,
		Wasm:           module,
		SourceDigest:   digest,
		PluginConfig:   pluginCfg,
		VMConfig:       vmCfg,
		FailOpen:       pc.Failure == "open",
		Instances:      pc.VM.Instances,
		MemoryLimit:    uint64(pc.VM.MemoryLimit),
		CallTimeout:    pc.VM.CallTimeout.D(),
		DoneTimeout:    pc.VM.DoneTimeout.D(),
		RestartBackoff: pc.VM.RestartBackoff.D(),
		Trusted:        builtin != "",
	})
	if err != nil {
		return nil, fmt.Errorf("plugin %q (%s): %w", pc.Name, pc.Wasm, err)
	}
	e.mu.Lock()
	e.open[sha]++
	e.mu.Unlock()
	if first {
		e.compiled.Store(true)
		// The engine knows: a trusted module missing from the cache starts
		// on the interpreter and writes its compiled code later, so
		// counting cache files around Load would say "hit".
		cache := string(p.CompileCache())
		e.log.Info(fmt.Sprintf("plugin %s ready in %s (compile cache %s)", pc.Name, time.Since(start).Round(time.Millisecond), cache),
			zap.String("plugin", pc.Name), zap.String("compile_cache", cache))
	}
	return &openVersion{WasmFactory: wasmfilter.NewWasmFactory(p, e.log.With(zap.String("plugin", pc.Name))), env: e, sha: sha}, nil
}

// giveBackHeap returns the Go heap that loading modules left behind to
// the OS, once after the loads of a start, reload or fetch that compiled
// something. Decoding, rewriting and compiling a module allocates several
// times its size, all garbage once the load returns (a Go SDK filter of
// 2.7 MB leaves about 10 MiB), and the Go runtime would otherwise keep
// those pages: its next collection is set by that peak, and its scavenger
// gives back only what the steady heap's goal does not cover, slowly. One
// forced collection costs milliseconds, off the request path; a load that
// compiled nothing (a module already open) skips it.
func (e *wasmEnv) giveBackHeap() {
	if e.compiled.Swap(false) {
		debug.FreeOSMemory()
	}
}

// openVersion is a loaded plugin version that leaves the env's count of
// open versions when it closes.
type openVersion struct {
	*wasmfilter.WasmFactory
	env  *wasmEnv
	sha  string
	once sync.Once
}

// Close drains and frees the version (WasmFactory.Close), then drops it
// from the count; safe to repeat.
func (v *openVersion) Close() {
	v.once.Do(func() {
		v.WasmFactory.Close()
		e := v.env
		e.mu.Lock()
		if e.open[v.sha]--; e.open[v.sha] <= 0 {
			delete(e.open, v.sha)
		}
		e.mu.Unlock()
	})
}

// openVersions is how many plugin versions are loaded and not closed:
// the serving ones plus those replaced and still draining.
func (e *wasmEnv) openVersions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.open {
		n += c
	}
	return n
}

// megabytes prints a module size the way a person reads it: "7.6 MB".
func megabytes(n int) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func (e *wasmEnv) close() {
	e.book.stop()
	e.mu.Lock()
	if e.engine != nil {
		e.engine.Close(context.Background())
	}
	e.mu.Unlock()
	if e.redis != nil {
		e.redis.Close()
	}
}

// builtinVMID is the vm_id the built-in plugins share unless one sets its own.
const builtinVMID = "sluice-builtin"

// configBytes is what on_configure / on_vm_start receive: the raw string
// verbatim, else the table as JSON, else nothing.
func configBytes(table map[string]any, raw string) ([]byte, error) {
	if raw != "" {
		return []byte(raw), nil
	}
	if table == nil {
		return nil, nil
	}
	return json.Marshal(table)
}

// builtinModule returns the embedded module serving built-in name, or a
// clear error (with a suggestion) for a name that is no built-in.
func builtinModule(name string) ([]byte, error) {
	if !plugins.Has(name) {
		hint := ""
		if s := config.Suggest(name, plugins.Names()); s != "" {
			hint = fmt.Sprintf("; did you mean \"builtin:%s\"?", s)
		}
		return nil, fmt.Errorf("no builtin plugin %q%s (builtins: %s)", name, hint, strings.Join(plugins.Names(), ", "))
	}
	return plugins.RustModule(name), nil
}
