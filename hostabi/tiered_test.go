package hostabi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// A trusted module not compiled yet serves through the interpreter as soon
// as it loads; when the compile is done new streams get compiled
// instances, a stream that started before keeps its instance to the end,
// which then closes; the next engine on the cache finds the compiled code
// (a marker says so) and loads it directly.
func TestTieredCompile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	wasm := rustGuest(t, "hostcalls")
	// Hold the background compile until the interpreter has served.
	e.compileSlot <- struct{}{}
	p, err := e.Load(ctx, PluginConfig{Name: "tiered", Wasm: wasm, Trusted: true, PluginConfig: []byte("get 1")})
	if err != nil {
		<-e.compileSlot
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if got := p.CompileCache(); got != CompileCacheMiss {
		t.Errorf("compile cache %q, want miss", got)
	}
	serve := func(hs *HTTPStream, s *mapStream) {
		t.Helper()
		s.refill()
		if a, err := hs.OnRequestHeaders(false); a != Continue || err != nil {
			t.Fatalf("OnRequestHeaders: %v %v", a, err)
		}
	}
	early := &mapStream{}
	hs1, err := p.NewHTTPStream(ctx, early)
	if err != nil {
		t.Fatal(err)
	}
	serve(hs1, early)
	if !hs1.in.cm.key.interpreted {
		t.Fatal("the first stream does not run on the interpreter")
	}
	select {
	case <-p.vm.compiled:
		t.Fatal("WaitCompiled would return before the compile")
	default:
	}
	<-e.compileSlot
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.WaitCompiled(wctx); err != nil {
		t.Fatal("the VM did not move to compiled code:", err)
	}
	p.vm.mu.Lock()
	upgraded := !p.vm.cm.key.interpreted
	p.vm.mu.Unlock()
	if !upgraded {
		t.Fatal("WaitCompiled returned before the VM moved to compiled code")
	}
	late := &mapStream{}
	hs2, err := p.NewHTTPStream(ctx, late)
	if err != nil {
		t.Fatal(err)
	}
	serve(hs2, late)
	if hs2.in == hs1.in || hs2.in.cm.key.interpreted {
		t.Error("a new stream went to the interpreter's instance")
	}
	serve(hs1, early) // the early stream keeps its instance
	old := hs1.in
	if err := hs1.OnDone(); err != nil {
		t.Fatal(err)
	}
	old.mu.Lock()
	closed := old.mod == nil && errors.Is(old.broken, errRetired)
	old.mu.Unlock()
	if !closed {
		t.Error("the interpreter's instance stayed open after its last stream")
	}
	if err := hs2.OnDone(); err != nil {
		t.Fatal(err)
	}
	if !fileExists(e.compiledMarker(p.vm.key.sum)) {
		t.Fatal("no marker for the compiled module")
	}

	e2, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close(ctx)
	p2, err := e2.Load(ctx, PluginConfig{Name: "tiered", Wasm: wasm, Trusted: true, PluginConfig: []byte("get 1")})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close(ctx)
	if p2.vm.cm.key.interpreted || p2.CompileCache() != CompileCacheHit {
		t.Errorf("second engine: interpreted %v, compile cache %q; want compiled code from the cache",
			p2.vm.cm.key.interpreted, p2.CompileCache())
	}
}

// A plugin closed before its compile is done, and then its engine, leave
// nothing running: Close waits for the compile and lets it go.
func TestTieredCompileClosedEarly(t *testing.T) {
	ctx := context.Background()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	e.compileSlot <- struct{}{}
	p, err := e.Load(ctx, PluginConfig{Name: "early", Wasm: rustGuest(t, "hostcalls"), Trusted: true, PluginConfig: []byte("none 1")})
	if err != nil {
		<-e.compileSlot
		t.Fatal(err)
	}
	if !p.vm.cm.key.interpreted {
		t.Error("with no disk cache a trusted module should start on the interpreter")
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-e.compileSlot
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	left := len(e.modules)
	e.mu.Unlock()
	if left != 0 {
		t.Errorf("%d compiled modules left after close", left)
	}
}

// TestTieredCompileGivesBackItsHeap: the background compile of a trusted
// module (the built-ins, 0.9 MB) leaves tens of MiB of the optimizing
// compiler's garbage; once the plugin runs compiled code, the process
// holds little more Go heap than it still uses.
func TestTieredCompileGivesBackItsHeap(t *testing.T) {
	ctx := context.Background()
	wasm, err := os.ReadFile(filepath.Join("..", "plugins", "rust", "builtins.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(ctx, EngineConfig{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	p, err := e.Load(ctx, PluginConfig{Name: "add-header", RootID: "add-header", Wasm: wasm, Trusted: true,
		PluginConfig: []byte(`{"request_headers":{"x-a":"1"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.WaitCompiled(wctx); err != nil {
		t.Fatal(err)
	}
	var held, live runtime.MemStats
	runtime.ReadMemStats(&held)
	runtime.GC()
	runtime.ReadMemStats(&live)
	kept := held.HeapSys - held.HeapReleased
	t.Logf("Go heap held %.1f MiB, live %.1f MiB", float64(kept)/(1<<20), float64(live.HeapAlloc)/(1<<20))
	// More than the heap's fragmentation (which grows with what earlier
	// tests left live), less than the compile's garbage.
	if kept > live.HeapAlloc+live.HeapAlloc/4+4<<20 {
		t.Errorf("the process holds %.1f MiB of Go heap for %.1f MiB live", float64(kept)/(1<<20), float64(live.HeapAlloc)/(1<<20))
	}
}

// TestEngineMakesTheRuntimesItNeeds: each wazero runtime (with its host
// modules) is made by the first module that needs it. A built-in read
// from the compile cache, and a user's module the deadline rewrite
// accepts, need the plain one only; the interpreter comes with a cold
// built-in.
func TestEngineMakesTheRuntimesItNeeds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	made := func(e *Engine) (rt, fast, interp bool) {
		return e.rt.rt != nil, e.fastRT.rt != nil, e.interpRT.rt != nil
	}
	e, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if rt, fast, interp := made(e); rt || fast || interp {
		t.Errorf("a new engine made runtimes: checked %v, plain %v, interpreter %v", rt, fast, interp)
	}
	wasm := rustGuest(t, "hostcalls")
	p, err := e.Load(ctx, PluginConfig{Name: "cold", Wasm: wasm, Trusted: true, PluginConfig: []byte("none 1")})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.WaitCompiled(wctx); err != nil {
		t.Fatal(err)
	}
	if rt, fast, interp := made(e); rt || !fast || !interp {
		t.Errorf("a cold built-in: checked %v, plain %v, interpreter %v; want the plain one and the interpreter", rt, fast, interp)
	}
	p.Close(ctx)
	e.Close(ctx)

	e2, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close(ctx)
	for _, trusted := range []bool{true, false} {
		p, err := e2.Load(ctx, PluginConfig{Name: fmt.Sprint("trusted-", trusted), Wasm: wasm, Trusted: trusted, PluginConfig: []byte("none 1")})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
	}
	if rt, fast, interp := made(e2); rt || !fast || interp {
		t.Errorf("a cached built-in and a rewritten module: checked %v, plain %v, interpreter %v; want the plain one only", rt, fast, interp)
	}
	// Closed runtimes stay closed: no load makes one after Close.
	e3, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e3.Close(ctx)
	if _, err := e3.Load(ctx, PluginConfig{Name: "late", Wasm: wasm, Trusted: true}); err == nil {
		t.Error("a load after Close succeeded")
	}
	if rt, fast, interp := made(e3); rt || fast || interp {
		t.Errorf("a closed engine made runtimes: checked %v, plain %v, interpreter %v", rt, fast, interp)
	}
}
