package hostabi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi/internal/interrupt"
)

// startCacheDir is the compile cache the start-up benchmarks read:
// SLUICE_WASM_CACHE when set (the Makefile's), else the tests' own.
func startCacheDir() string {
	if d := os.Getenv("SLUICE_WASM_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "sluice-wasm-cache")
}

// BenchmarkPluginStart measures what a user waits for when a plugin
// loads: a fresh engine (as a new process has) loading a user's Go filter
// (examples/filters/header-go) and the built-in module until the plugin
// serves, with the compile cache warm ("warm") and with no cache ("cold";
// slow: run with -benchtime=1x). The phases are reported as ms/op metrics.
func BenchmarkPluginStart(b *testing.B) {
	modules := []struct {
		name, path string
		trusted    bool
	}{
		{"header-go", filepath.Join("..", "examples", "filters", "header-go", "header-go.wasm"), false},
		{"builtin", filepath.Join("..", "plugins", "builtin.wasm"), true},
	}
	for _, m := range modules {
		wasm, err := os.ReadFile(m.path)
		if err != nil {
			b.Skip(err)
		}
		for _, cache := range []string{"warm", "cold"} {
			b.Run(m.name+"/"+cache, func(b *testing.B) {
				dir := startCacheDir()
				if cache == "warm" {
					// Fill the cache once, outside the measurement.
					loadOnce(b, dir, wasm, m.trusted, "")
				}
				var phases map[string]time.Duration
				b.ResetTimer()
				for range b.N {
					if cache == "cold" {
						dir = b.TempDir()
					}
					want := CompileCacheMiss
					if cache == "warm" {
						want = CompileCacheHit
					}
					phases = loadOnce(b, dir, wasm, m.trusted, want)
				}
				for k, d := range phases {
					b.ReportMetric(float64(d.Microseconds())/1000, k+"-ms")
				}
			})
		}
	}
}

// loadOnce makes an engine on the cache dir, loads wasm as a plugin and
// closes both, timing the phases of the load; want, when set, is where
// the compiled code must have come from.
func loadOnce(tb testing.TB, dir string, wasm []byte, trusted bool, want CompileCache) map[string]time.Duration {
	ctx := context.Background()
	phases := map[string]time.Duration{}
	t0 := time.Now()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: dir, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close(ctx)
	phases["engine"] = time.Since(t0)
	// As the runtime does: check a module from a file, then load it (the
	// built-in module is part of the binary).
	t := time.Now()
	if !trusted {
		if err := CheckModule(wasm); err != nil {
			tb.Fatal(err)
		}
		phases["check"] = time.Since(t)
	}
	t = time.Now()
	// The built-in module serves each plugin by root id; add-header is
	// one of them. A user's filter ignores the root id.
	p, err := e.Load(ctx, PluginConfig{Name: "start", RootID: "add-header", Wasm: wasm, Trusted: trusted, Instances: 4, PluginConfig: []byte("{}")})
	if err != nil {
		tb.Fatal(err)
	}
	phases["load"] = time.Since(t)
	phases["total"] = time.Since(t0)
	if want != "" && p.CompileCache() != want {
		tb.Errorf("compile cache %q, want %q", p.CompileCache(), want)
	}
	p.Close(ctx)
	return phases
}

// A plugin says where its compiled code came from (the runtime logs it):
// compiled on a first load into an empty cache (miss), read back by a new
// engine on the same cache (hit), compiled with no disk cache (off).
func TestPluginCompileCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, c := range []struct {
		dir  string
		want CompileCache
	}{{dir, CompileCacheMiss}, {dir, CompileCacheHit}, {"-", CompileCacheOff}} {
		e, err := NewEngine(ctx, EngineConfig{CacheDir: c.dir})
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.Load(ctx, PluginConfig{Name: "cache", Wasm: minimalGuest()})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.CompileCache(); got != c.want {
			t.Errorf("cache dir %q: compile cache %q, want %q", c.dir, got, c.want)
		}
		p.Close(ctx)
		e.Close(ctx)
	}
}

// A module CheckModule accepted is not validated again by the load that
// follows: the load takes CheckModule's answer (and a load with none
// validates it itself, refusing an invalid module as before).
func TestCheckedModuleValidatedOnce(t *testing.T) {
	ctx := context.Background()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	wasm := minimalGuest()
	if err := CheckModule(wasm); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	checkedModules.mu.Lock()
	_, kept := checkedModules.m[sum]
	checkedModules.mu.Unlock()
	if !kept {
		t.Fatal("CheckModule did not keep its answer for the load")
	}
	p, err := e.Load(ctx, PluginConfig{Name: "checked", Wasm: wasm})
	if err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)
	if takeChecked(sum) != nil {
		t.Error("the load did not use CheckModule's answer")
	}
	if _, err := e.Load(ctx, PluginConfig{Name: "invalid", Wasm: []byte("\x00asm\x01\x00\x00\x00\x01\x05")}); err == nil {
		t.Error("a module with a truncated section loaded")
	}
}

// The disk cache keeps a module's deadline rewrite for the next load (by
// the original's digest); a kept file that is not a module is redone and
// replaced, and the plugin still loads.
func TestRewriteKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm := minimalGuest()
	want, err := interrupt.Instrument(wasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, corrupt := range []bool{false, true} {
		e, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		path := e.rewrittenPath(sha256.Sum256(wasm))
		if corrupt {
			if err := os.WriteFile(path, []byte("not a module"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		p, err := e.Load(ctx, PluginConfig{Name: "kept", Wasm: wasm})
		if err != nil {
			t.Fatalf("corrupt=%v: %v", corrupt, err)
		}
		p.Close(ctx)
		e.Close(ctx)
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("corrupt=%v: kept rewrite %d bytes (%v), want Instrument's %d", corrupt, len(got), err, len(want))
		}
	}
}
