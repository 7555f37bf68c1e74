package hostabi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// A trusted module (a built-in plugin) with no compiled code in the cache
// would make the proxy wait for wazero's optimizing compiler: 50-200 ms
// for each Rust built-in, seconds for a Go module. wazero's interpreter
// takes a tenth of that to prepare the same module (and runs it about ten
// times slower), so such a plugin serves at once through the interpreter
// while the compiler works in the background, one module at a time; then
// its VM moves to the compiled code: new streams go to instances of it,
// and the interpreter's instances close as their last stream ends.
//
// Whether the cache holds a module's compiled code is wazero's secret; a
// marker file the engine writes beside it once a module is compiled says
// so for the next process. A module with a marker is compiled (read from
// the cache) before the load returns, as any other module.

type compileResult struct {
	cm  *compiledModule
	err error
}

// compileTiered is compileSum, and for a trusted module that has not been
// compiled into the cache yet, the interpreter's module with a channel
// that delivers the compiled one.
func (e *Engine) compileTiered(ctx context.Context, wasm []byte, sum [32]byte, trusted bool) (*compiledModule, <-chan compileResult, error) {
	marker := e.compiledMarker(sum)
	if !trusted || fileExists(marker) {
		cm, err := e.compileSum(ctx, wasm, sum, trusted)
		return cm, nil, err
	}
	if cm := e.kept(moduleKey{sum: sum, trusted: true}); cm != nil {
		return cm, nil, nil
	}
	quick, err := e.compileInterpreted(ctx, wasm, sum)
	if err != nil {
		// The compiler's answer (and error message) is the one that counts.
		cm, err := e.compileSum(ctx, wasm, sum, true)
		return cm, nil, err
	}
	full := make(chan compileResult, 1)
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		// One background compile at a time: the loads that follow (and
		// the interpreter serving) keep the other cores.
		e.compileSlot <- struct{}{}
		// Not the load's context: the compile outlives the load.
		cm, err := e.compileSum(context.Background(), wasm, sum, true)
		<-e.compileSlot
		if err == nil && marker != "" {
			keepFile(marker, nil)
		}
		full <- compileResult{cm, err}
	}()
	return quick, full, nil
}

// compiledMarker is the file that says a trusted module's compiled code is
// in the disk cache: by the module's digest, under the wazero version that
// compiled it (a new one starts an empty cache). "" without a disk cache.
func (e *Engine) compiledMarker(sum [32]byte) string {
	if e.cacheDir == "" {
		return ""
	}
	return filepath.Join(e.cacheDir, "sluice-compiled-"+wazeroVersion(), hex.EncodeToString(sum[:]))
}

func fileExists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

// wazeroVersion is the wazero module this binary was built with.
var wazeroVersion = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				if d.Replace != nil {
					d = d.Replace
				}
				return d.Version
			}
		}
	}
	return "unknown"
})

// compileInterpreted compiles a trusted module for wazero's interpreter.
func (e *Engine) compileInterpreted(ctx context.Context, wasm []byte, sum [32]byte) (*compiledModule, error) {
	key := moduleKey{sum: sum, trusted: true, interpreted: true}
	if cm := e.kept(key); cm != nil {
		return cm, nil
	}
	rt, err := e.interpRT.get()
	if err != nil {
		return nil, err
	}
	mod, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compiling: %w", err)
	}
	cache := CompileCacheOff
	if e.cache != nil {
		cache = CompileCacheMiss
	}
	return e.addModule(ctx, key, rt, wasm, mod, false, cache)
}

// releaseLater lets a compile nobody will use go when it is done.
func (e *Engine) releaseLater(c <-chan compileResult) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		if r := <-c; r.cm != nil {
			e.release(context.Background(), r.cm)
		}
	}()
}

// retiredGen is a VM's instances of the code it moved away from; the last
// one to close releases that code.
type retiredGen struct {
	e    *Engine
	cm   *compiledModule
	left atomic.Int32
}

var errRetired = errors.New("instance retired: the plugin moved to compiled code")

// upgrade moves the VM to the compiled module when it arrives: one
// instance of it is started, and the interpreter's instances are retired.
func (v *vm) upgrade(full <-chan compileResult) {
	defer v.bg.Done()
	defer close(v.compiled)
	start := time.Now()
	var r compileResult
	select {
	case r = <-full:
	case <-v.stopJan:
		v.e.releaseLater(full)
		return
	}
	if r.err != nil {
		v.log.Error("compiling the module failed; it stays on wazero's interpreter", zap.Error(r.err))
		return
	}
	v.createMu.Lock()
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		v.createMu.Unlock()
		v.e.release(context.Background(), r.cm)
		return
	}
	old, retired := v.cm, v.insts
	v.cm, v.insts = r.cm, nil
	g := &retiredGen{e: v.e, cm: old}
	g.left.Store(int32(len(retired)) + 1)
	for _, in := range retired {
		in.retired.Store(g)
	}
	v.retired = append(v.retired, retired...)
	v.mu.Unlock()
	in, err := v.newInstance(context.Background())
	v.mu.Lock()
	if err != nil {
		// The next stream makes one (replace), with the usual backoff.
		v.noteFailureLocked()
		v.log.Error("starting an instance of the compiled module", zap.Error(err))
	} else if v.closed {
		go in.close(errPluginClosed)
	} else {
		v.insts = append(v.insts, in)
	}
	v.mu.Unlock()
	v.createMu.Unlock()
	v.log.Info("the module is compiled: new streams run its compiled code",
		zap.Duration("waited", time.Since(start)), zap.Int("retired_instances", len(retired)))
	for _, in := range retired {
		in.stopTicks()
	}
	for _, in := range retired {
		// Streams pinned meanwhile, and callouts waiting for their
		// answers, close it when they end (release, calloutEnded).
		in.closeRetiredIfIdle()
	}
	if g.done() {
		// The interpreter's module (the code as Go data) is released,
		// and the optimizing compiler's garbage is dead: together about
		// 40 MiB for the built-ins, which the process would go on
		// holding (the Go runtime returns only what its next
		// collection's goal does not cover, and slowly). Give them back
		// to the OS now; TestTieredCompileGivesBackItsHeap.
		debug.FreeOSMemory()
	}
}

// WaitCompiled returns once the plugin runs compiled code: at once unless
// it started on wazero's interpreter (a built-in plugin loaded before its
// compiled code was in the cache), or when ctx ends. Benchmarks and tests
// that measure a built-in call it after Load; the proxy does not need to.
// It also returns if the compile failed or the plugin closed meanwhile.
func (p *Plugin) WaitCompiled(ctx context.Context) error {
	select {
	case <-p.vm.compiled:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A retired instance has finished its work when no stream is pinned to
// it and none of its callouts (http_call, gRPC call) waits for an answer:
// a root context's callout is work in flight as much as a stream is. The
// JWKS fetch a jwt root context makes at configure time holds a lease in
// shared data that the other instances wait on; closed under it, the
// answer was dropped and the keys fetched again, late, by another
// instance. Envoy lets a root context put off its VM's shutdown while it
// finishes asynchronous work (proxy_on_done answering false until
// proxy_done); a retirement is the host's business, which the plugin
// cannot see coming, so the host waits for the answers itself: the
// instance stays until they are delivered (to the retired root context,
// as usual).
//
// It starts no new work meanwhile: its root contexts' timers stop when it
// retires (the compiled instance's root contexts tick instead; two
// generations ticking would, e.g., both refresh the keys), and they make
// no new callouts (dispatch): a chain of them could hold it forever.
// Streams still pinned to it are served in full, callouts included.
//
// And its wait is bounded: a callout's answer is waited for until its own
// timeout and calloutGrace have passed (the caller's timeout answers it
// before that; a caller that never answers must not leak the instance);
// one without a timeout (0: the caller's default) is waited for
// DoneTimeout, the bound on an old generation's proxy_done. A gRPC
// stream does not hold it: it has no end of its own.

// calloutGrace is how long past its own timeout a callout's answer may
// keep a retired instance open.
const calloutGrace = time.Second

// closeRetiredIfIdle closes a retired instance that has finished its work
// (or whose callouts are past their bound), and otherwise, if only
// callouts hold it, arms its timer for their bound.
func (in *instance) closeRetiredIfIdle() {
	if in.retired.Load() == nil || in.retiredClosed.Load() || in.load.Load() != 0 {
		return
	}
	in.mu.Lock()
	wait := in.calloutWaitLocked()
	if wait > 0 {
		if in.retireTimer == nil {
			in.retireTimer = time.AfterFunc(wait, in.closeRetiredIfIdle)
		} else {
			in.retireTimer.Reset(wait)
		}
	}
	in.mu.Unlock()
	if wait <= 0 {
		in.closeRetired()
	}
}

// calloutWaitLocked is how long the instance's callouts may still keep it
// open: until the latest bound of those waiting for an answer, 0 if none
// (or the instance is broken: no answer would be delivered). Callers hold
// mu.
func (in *instance) calloutWaitLocked() time.Duration {
	if in.broken != nil {
		return 0
	}
	var last int64
	for _, co := range in.callouts {
		if co.stream == nil && !co.cancelled && co.due > last {
			last = co.due
		}
	}
	return time.Duration(last - monoNow())
}

// calloutDue is when a callout dispatched now with this timeout stops
// holding a retired instance open.
func (in *instance) calloutDue(timeout time.Duration) int64 {
	if timeout <= 0 {
		timeout = in.vm.cfg.DoneTimeout
	}
	return monoNow() + int64(timeout+calloutGrace)
}

// retiredRoot: the effective context is a root context of a retired
// instance, which starts no new callouts. Callers hold mu.
func (in *instance) retiredRoot() bool {
	return in.retired.Load() != nil && in.roots[in.effective] != nil
}

// calloutEnded is called after a callout's answer was delivered (or
// dropped): a retired instance may now be done.
func (in *instance) calloutEnded() {
	if in.retired.Load() != nil {
		in.closeRetiredIfIdle()
	}
}

// stopTicks stops the root contexts' timers of an instance that retires;
// setTick starts none on it from now on.
func (in *instance) stopTicks() {
	in.mu.Lock()
	for _, rc := range in.roots {
		rc.stopTick()
	}
	in.mu.Unlock()
}

// closeRetired closes a retired instance once.
func (in *instance) closeRetired() {
	if in.retiredClosed.Swap(true) {
		return
	}
	in.mu.Lock()
	if in.retireTimer != nil {
		in.retireTimer.Stop()
	}
	in.mu.Unlock()
	v := in.vm
	v.mu.Lock()
	for i, x := range v.retired {
		if x == in {
			v.retired = append(v.retired[:i:i], v.retired[i+1:]...)
			break
		}
	}
	v.mu.Unlock()
	in.close(errRetired)
	if in.retired.Load().done() {
		// As in upgrade; but the last stream of a retired instance
		// ends here, on the request's path, which must not wait for
		// a collection.
		go debug.FreeOSMemory()
	}
}

// done counts one retired instance closed (or the move itself done); the
// last releases the code they ran, and reports it.
func (g *retiredGen) done() bool {
	if g.left.Add(-1) == 0 {
		g.e.release(context.Background(), g.cm)
		return true
	}
	return false
}
