package hostabi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
	"github.com/sluice-proxy/sluice/hostabi/internal/interrupt"
)

// EngineConfig is the process-wide part of the host.
type EngineConfig struct {
	// CacheDir holds wazero's compiled code between runs; default
	// os.TempDir()/sluice-wasm-cache. "-" disables the disk cache.
	CacheDir string
	// MaxMemory caps any instance's linear memory whatever a plugin asks
	// for; default 1GiB (proxy-wasm-cpp-host's limit).
	MaxMemory uint64
	Logger    *zap.Logger
	// HTTP dispatches http_call and grpc_call; nil makes them BadArgument.
	HTTP HTTPCaller
	// Shared is the shared data store; default an in-memory one.
	Shared SharedStore
	// Metrics holds plugin metrics; default an in-memory one.
	Metrics Metrics
	// Properties answers process-level properties (node.*); optional.
	Properties PropertyFunc
	// GRPC opens proxy_grpc_stream streams; nil uses HTTP when it
	// implements GRPCStreamer, else proxy_grpc_stream is Unimplemented.
	GRPC GRPCStreamer
	// Resolver serves the "resolve_lua" foreign function; default
	// net.DefaultResolver.
	Resolver Resolver
	// MaxLogLinesPerCall and MaxLogBytesPerCall bound what one call into a
	// guest may log (proxy_log, stdout, stderr); past them lines are
	// dropped and counted in wasm_log_lines_dropped_total_plugin=NAME.
	// Defaults 256 lines and 128KiB.
	MaxLogLinesPerCall int
	MaxLogBytesPerCall int
}

// Engine is the process's Wasm host: wazero runtimes with the WASI and
// proxy host modules registered once and shared by every plugin.
//
// There are two runtimes. The plain one runs trusted modules (our built-in
// plugins) and untrusted ones rewritten by package interrupt, whose
// deadline is a flag the guest tests at every function entry and loop head.
// The other compiles with wazero's own termination checks, for the modules
// the rewriter refuses: wazero makes every loop header call out to Go to
// check for a closed module, which costs a Go-built guest about five times
// its plain speed (measured here: 1.3 us vs 7-9 us for an empty callback).
//
// Each runtime is made when a module first needs it: a runtime with its
// host modules costs about 0.4 MiB of Go heap and compiled trampolines,
// and a process usually needs one (the quickstart's built-in, from the
// compile cache, needs only the plain one).
type Engine struct {
	cfg EngineConfig
	log *zap.Logger
	// rt compiles with wazero's termination checks, fastRT without.
	rt     lazyRuntime
	fastRT lazyRuntime
	// interpRT is wazero's interpreter, which serves a trusted module
	// while its compile runs (tiered.go).
	interpRT lazyRuntime
	cache    wazero.CompilationCache
	// cacheDir is the disk cache's directory, when there is one.
	cacheDir string
	queues   *queues

	// bg counts compiles running in the background (tiered.go); Close
	// waits for them before it closes the runtimes under them.
	bg sync.WaitGroup
	// compileSlot lets one background compile run at a time.
	compileSlot chan struct{}

	mu      sync.Mutex
	modules map[moduleKey]*compiledModule
	vms     map[vmKey]*vm // shared VMs, by vm_id and module
}

type moduleKey struct {
	sum         [32]byte
	trusted     bool
	interpreted bool
}

type compiledModule struct {
	key     moduleKey
	rt      wazero.Runtime
	mod     wazero.CompiledModule
	version abi.Version
	refs    int
	// interruptible: the module carries package interrupt's flag.
	interruptible bool
	// cache tells where the compiled code came from.
	cache CompileCache
	// headerArgs is how many parameters proxy_on_request_headers takes:
	// 2 in ABI 0.1.0 (no end_of_stream), else 3.
	headerArgs int
	// createRequestHeaders: the module exports
	// sluice_on_context_create_request_headers with its four parameters
	// (context, root context, headers, end of stream), next to the ABI
	// 0.2 callbacks it stands for; another export of that name is not
	// called (the ABI's two callbacks are).
	createRequestHeaders bool
	// data is the module's data segments when they are kept packed
	// (packed_data.go): each instance writes them into its memory.
	data *packedData
	// calls holds, by callback, the export an instance calls for it ("":
	// none; the host skips it): the callback's name, malloc for a missing
	// proxy_on_memory_allocate, none for a create-with-headers export of
	// another shape. Instances look each one up when first called. The
	// start section's entry is a guess for a rewritten module (it has one
	// if the module had a start section): call it through fn, not has.
	calls [numCallbacks]string
}

// CompileCache tells where a plugin's compiled code came from.
type CompileCache string

const (
	// CompileCacheHit: read from the on-disk compile cache.
	CompileCacheHit CompileCache = "hit"
	// CompileCacheMiss: compiled now (and written to the cache).
	CompileCacheMiss CompileCache = "miss"
	// CompileCacheOff: compiled now; the engine has no disk cache.
	CompileCacheOff CompileCache = "off"
)

// NewEngine starts the runtime. Close it when the process ends.
func NewEngine(ctx context.Context, cfg EngineConfig) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = 1 << 30
	}
	if cfg.Shared == nil {
		cfg.Shared = NewMemoryStore()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMemoryMetrics()
	}
	if cfg.MaxLogLinesPerCall <= 0 {
		cfg.MaxLogLinesPerCall = 256
	}
	if cfg.MaxLogBytesPerCall <= 0 {
		cfg.MaxLogBytesPerCall = 128 << 10
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, queues: newQueues(), compileSlot: make(chan struct{}, 1), modules: map[moduleKey]*compiledModule{}, vms: map[vmKey]*vm{}}
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(uint32(min(cfg.MaxMemory/65536, 65536)))
	switch cfg.CacheDir {
	case "-":
	default:
		dir := cfg.CacheDir
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "sluice-wasm-cache")
		}
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, fmt.Errorf("opening wasm compilation cache %q: %w", dir, err)
		}
		e.cache, e.cacheDir = cache, dir
		rc = rc.WithCompilationCache(cache)
	}
	e.rt.cfg = rc.WithCloseOnContextDone(true)
	e.fastRT.cfg = rc
	e.interpRT.cfg = wazero.NewRuntimeConfigInterpreter().
		WithMemoryLimitPages(uint32(min(cfg.MaxMemory/65536, 65536)))
	return e, nil
}

// lazyRuntime is a wazero runtime with the host modules registered, made
// on first use.
type lazyRuntime struct {
	cfg  wazero.RuntimeConfig
	once sync.Once
	rt   wazero.Runtime
	err  error
}

var errEngineClosed = errors.New("the wasm engine is closed")

// get returns the runtime, making it the first time.
func (l *lazyRuntime) get() (wazero.Runtime, error) {
	l.once.Do(func() {
		// Not a load's context: the runtime outlives the load.
		ctx := context.Background()
		rt := wazero.NewRuntimeWithConfig(ctx, l.cfg)
		err := registerWASI(ctx, rt)
		if err == nil {
			err = registerEnv(ctx, rt)
		}
		if err != nil {
			_ = rt.Close(ctx)
			rt = nil
		}
		l.rt, l.err = rt, err
	})
	return l.rt, l.err
}

// close closes the runtime if it was made; none is made after.
func (l *lazyRuntime) close(ctx context.Context) error {
	l.once.Do(func() { l.err = errEngineClosed })
	if l.rt == nil {
		return nil
	}
	return l.rt.Close(ctx)
}

// Close closes the runtimes and every instance still open. Plugins should
// be closed (drained) first.
func (e *Engine) Close(ctx context.Context) error {
	e.bg.Wait()
	err := errors.Join(e.rt.close(ctx), e.fastRT.close(ctx), e.interpRT.close(ctx))
	if e.cache != nil {
		err = errors.Join(err, e.cache.Close(ctx))
	}
	return err
}

// compile returns the compiled module for wasm, compiling it at most once
// per content while any plugin uses it.
func (e *Engine) compile(ctx context.Context, wasm []byte, trusted bool) (*compiledModule, error) {
	return e.compileSum(ctx, wasm, sha256.Sum256(wasm), trusted)
}

// compileSum is compile for a module whose SHA-256 the caller has.
func (e *Engine) compileSum(ctx context.Context, wasm []byte, sum [32]byte, trusted bool) (*compiledModule, error) {
	key := moduleKey{sum: sum, trusted: trusted}
	if cm := e.kept(key); cm != nil {
		return cm, nil
	}
	// A trusted module runs without termination checks; an untrusted one
	// gets them from the rewrite (below) on fastRT too, or from wazero.
	slot := &e.rt
	if trusted {
		slot = &e.fastRT
	}
	interruptible := false
	// Compile outside the lock: it takes seconds and other plugins may load
	// meanwhile. Two loads of the same new module may both compile; the
	// loser's copy is closed. An untrusted module is validated once: by
	// CheckModule when the runtime checked it before loading, else here.
	// A trusted one (built into sluice) is not rewritten, and wazero
	// validates what it compiles: our pass would only cost 20-30 ms.
	entries := e.cacheEntries()
	var mod wazero.CompiledModule
	var err, kept error
	if !trusted {
		checked := takeChecked(sum)
		if checked == nil {
			if checked, err = interrupt.Check(wasm); err != nil {
				return nil, err
			}
		}
		if mod, kept = e.compileInterruptible(ctx, wasm, sum, checked); mod != nil {
			slot, interruptible = &e.fastRT, true
		}
	}
	rt, err := slot.get()
	if err != nil {
		if mod != nil {
			_ = mod.Close(ctx)
		}
		return nil, err
	}
	if mod == nil {
		if mod, err = rt.CompileModule(ctx, wasm); err != nil {
			return nil, fmt.Errorf("compiling: %w", err)
		}
		if kept != nil {
			// Said only once the module compiled: for a module that does
			// not, the refusal is the news, not the fallback.
			e.log.Info("wasm module kept as is: its callback deadline falls back to wazero's slower termination checks",
				zap.Error(kept))
		}
	}
	cache := CompileCacheOff
	if e.cache != nil {
		// wazero writes one file per module it compiles: none new, the
		// code came from the cache.
		cache = CompileCacheHit
		if e.cacheEntries() > entries {
			cache = CompileCacheMiss
		}
	}
	dropFunctionBodies(mod)
	return e.addModule(ctx, key, rt, wasm, mod, interruptible, cache)
}

// kept returns the compiled module kept under key, with a reference
// taken, or nil.
func (e *Engine) kept(key moduleKey) *compiledModule {
	e.mu.Lock()
	defer e.mu.Unlock()
	cm := e.modules[key]
	if cm != nil {
		cm.refs++
	}
	return cm
}

// addModule finds the module's ABI version, checks its imports and keeps
// it for the next load of the same module (or takes the one a concurrent
// load kept first). wasm is the module as written, mod its compiled code.
func (e *Engine) addModule(ctx context.Context, key moduleKey, rt wazero.Runtime, wasm []byte, mod wazero.CompiledModule,
	interruptible bool, cache CompileCache) (*compiledModule, error) {
	exports, err := interrupt.ExportParams(wasm)
	if err != nil {
		// wazero compiled what this reader could not read: ask wazero.
		exports = map[string]int{}
		for name, d := range mod.ExportedFunctions() {
			exports[name] = len(d.ParamTypes())
		}
	}
	version := abi.VersionUnknown
	for name := range exports {
		if v, ok := abi.VersionExports[name]; ok && v > version {
			version = v
		}
	}
	if version == abi.VersionUnknown {
		_ = mod.Close(ctx)
		return nil, errors.New("missing or unknown proxy-wasm ABI version: the module exports no proxy_abi_version_0_1_0, _0_2_0 or _0_2_1 (is it a proxy-wasm filter?)")
	}
	headerArgs := 3
	if n, ok := exports[callbackNames[cbRequestHeaders]]; ok {
		headerArgs = n
	}
	_, creates := exports[callbackNames[cbContextCreate]]
	createRequestHeaders := creates && headerArgs == 3 && exports[callbackNames[cbCreateRequestHeaders]] == 4
	// A trusted module is built into sluice: its tests link it against
	// these host modules, and wazero refuses a missing import when it
	// instantiates. The check is for users' modules, and would cost a
	// trusted one what ExportParams saves (wazero builds every function's
	// definition to list the imports).
	if !key.trusted {
		if err := checkImports(rt, wasm, mod); err != nil {
			_ = mod.Close(ctx)
			return nil, err
		}
	}
	data := packData(mod)
	e.mu.Lock()
	defer e.mu.Unlock()
	if cm := e.modules[key]; cm != nil {
		cm.refs++
		_ = mod.Close(ctx)
		return cm, nil
	}
	cm := &compiledModule{key: key, rt: rt, mod: mod, version: version, refs: 1, interruptible: interruptible, cache: cache,
		headerArgs: headerArgs, createRequestHeaders: createRequestHeaders, data: data}
	for cb, name := range callbackNames {
		if _, ok := exports[name]; ok {
			cm.calls[cb] = name
		}
	}
	if _, ok := exports["malloc"]; ok && cm.calls[cbMemoryAllocate] == "" {
		cm.calls[cbMemoryAllocate] = "malloc"
	}
	if !createRequestHeaders {
		cm.calls[cbCreateRequestHeaders] = ""
	}
	if interruptible {
		// The rewrite exports the start section's function, if the
		// module has one; wasm is the module before it.
		cm.calls[cbStartSection] = interrupt.StartExport
	}
	e.modules[key] = cm
	return cm, nil
}

// compileInterruptible compiles wasm, which Check accepted, rewritten by
// package interrupt for the plain runtime. A nil module with a reason
// (kept) means the rewriter cannot handle this one, and the caller
// compiles it as it is with wazero's termination checks.
func (e *Engine) compileInterruptible(ctx context.Context, wasm []byte, sum [32]byte, checked *interrupt.Checked) (mod wazero.CompiledModule, kept error) {
	fastRT, err := e.fastRT.get()
	if err != nil {
		return nil, err
	}
	path := e.rewrittenPath(sum)
	if path != "" {
		// The rewrite kept by an earlier load saves redoing it (10-15 ms
		// for a Go-built module); one that does not compile is redone.
		if patched, err := os.ReadFile(path); err == nil {
			if mod, err := fastRT.CompileModule(ctx, patched); err == nil {
				return mod, nil
			}
		}
	}
	patched, err := interrupt.InstrumentChecked(wasm, checked)
	if err == nil {
		if mod, err = fastRT.CompileModule(ctx, patched); err == nil {
			if path != "" {
				keepFile(path, patched)
			}
			return mod, nil
		}
	}
	return nil, err
}

// rewrittenPath is where the disk cache keeps a module's deadline rewrite,
// by the original's digest and the rewrite's version; "" without a disk
// cache. The directory is trusted as wazero's compiled code next to it is.
func (e *Engine) rewrittenPath(sum [32]byte) string {
	if e.cacheDir == "" {
		return ""
	}
	return filepath.Join(e.cacheDir, "sluice-interrupt-v"+interrupt.Version, hex.EncodeToString(sum[:])+".wasm")
}

// keepFile writes b to path through a temporary file and a rename, so a
// reader never sees half of it; failures only lose the saving.
func keepFile(path string, b []byte) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), path) != nil {
		_ = os.Remove(f.Name())
	}
}

// cacheEntries counts the compiled modules in the disk cache (wazero keeps
// them in one directory per wazero version and platform); 0 without one.
func (e *Engine) cacheEntries() int {
	if e.cache == nil {
		return 0
	}
	subdirs, _ := filepath.Glob(filepath.Join(e.cacheDir, "wazero-*"))
	n := 0
	for _, d := range subdirs {
		entries, _ := os.ReadDir(d)
		n += len(entries)
	}
	return n
}

// CheckModule checks a module's structure as Load does before compiling
// it, with memory bounded by the module's size: the header, section and
// vector sizes against the bytes there are, the WebAssembly JS API's
// limits (functions, locals, table sizes, ...), and every index the module
// names against what it declares. It does not compile or type-check the
// code; `sluice validate` uses it to refuse what a load would.
func CheckModule(wasm []byte) error {
	c, err := interrupt.Check(wasm)
	if err != nil {
		return err
	}
	checkedModules.put(sha256.Sum256(wasm), c)
	return nil
}

// checkedModules remembers the last modules CheckModule accepted, by
// digest: the runtime checks a module before loading it, and the load
// then skips a second validation pass (10-20 ms for a Go-built module).
var checkedModules = &checkedCache{m: map[[32]byte]*interrupt.Checked{}}

// maxChecked bounds checkedModules: checks whose load never came are
// forgotten oldest first.
const maxChecked = 8

type checkedCache struct {
	mu    sync.Mutex
	order [][32]byte
	m     map[[32]byte]*interrupt.Checked
}

func (c *checkedCache) put(sum [32]byte, ch *interrupt.Checked) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[sum]; !ok {
		c.order = append(c.order, sum)
	}
	c.m[sum] = ch
	for len(c.order) > maxChecked {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
}

// takeChecked returns (and forgets) CheckModule's answer for the module
// with this digest, nil when it has none.
func takeChecked(sum [32]byte) *interrupt.Checked {
	c := checkedModules
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.m[sum]
	if ch != nil {
		delete(c.m, sum)
		for i, s := range c.order {
			if s == sum {
				c.order = append(c.order[:i:i], c.order[i+1:]...)
				break
			}
		}
	}
	return ch
}

func (e *Engine) release(ctx context.Context, cm *compiledModule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cm.refs--
	if cm.refs == 0 {
		delete(e.modules, cm.key)
		_ = cm.mod.Close(ctx)
	}
}

// hostFunc is one host function with its wazero signature.
type hostFunc struct {
	name    string
	fn      api.GoModuleFunction
	params  []api.ValueType
	names   []string
	results []api.ValueType
}

func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = api.ValueTypeI32
	}
	return t
}

func instantiateHost(ctx context.Context, rt wazero.Runtime, module string, funcs []hostFunc) error {
	b := rt.NewHostModuleBuilder(module)
	for _, f := range funcs {
		b.NewFunctionBuilder().
			WithGoModuleFunction(f.fn, f.params, f.results).
			WithParameterNames(f.names...).
			Export(f.name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("registering host module %q: %w", module, err)
	}
	return nil
}
