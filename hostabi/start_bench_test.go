package hostabi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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

// startModule is one module a start-up benchmark loads.
type startModule struct {
	name, path string
	// trusted: built into sluice (not rewritten, no CheckModule).
	trusted bool
	config  string
}

// startSets are what a user waits for: a user's Go filter
// (examples/filters/header-go), the Go built-in module, and the built-ins
// ported to Rust loaded together, as a config using them all does.
var startSets = []struct {
	name    string
	modules []startModule
}{
	{"header-go", []startModule{{name: "header-go", path: filepath.Join("..", "examples", "filters", "header-go", "header-go.wasm"), config: "{}"}}},
	{"go-reference", []startModule{{name: "add-header", path: filepath.Join("..", "plugins", "goref", "builtin.wasm"), trusted: true, config: "{}"}}},
	{"rust-builtins", []startModule{
		{name: "add-header", path: rustBuiltin("add-header"), trusted: true, config: `{"request_headers":{"x-a":"1"}}`},
		{name: "ip-restriction", path: rustBuiltin("ip-restriction"), trusted: true, config: `{"allow":["127.0.0.1"]}`},
		{name: "key-auth", path: rustBuiltin("key-auth"), trusted: true, config: `{}`},
		{name: "request-transformer", path: rustBuiltin("request-transformer"), trusted: true, config: `{"add":{"headers":["x-a:1"]}}`},
		{name: "response-transformer", path: rustBuiltin("response-transformer"), trusted: true, config: `{"add":{"headers":["x-a:1"]}}`},
	}},
}

func rustBuiltin(name string) string { return filepath.Join("..", "plugins", "rust", name+".wasm") }

func startSet(name string) []startModule {
	for _, s := range startSets {
		if s.name == name {
			return s.modules
		}
	}
	return nil
}

// readStartSet reads a set's modules; a missing one skips the benchmark.
func readStartSet(tb testing.TB, mods []startModule) [][]byte {
	var out [][]byte
	for _, m := range mods {
		b, err := os.ReadFile(m.path)
		if err != nil {
			tb.Skip(err)
		}
		out = append(out, b)
	}
	return out
}

// BenchmarkPluginStart measures what a user waits for when plugins load:
// a fresh engine (as a new process has) loading a set of modules until
// every plugin serves, with the compile cache warm ("warm") and with no
// cache ("cold"; slow for Go modules: run with -benchtime=1x). The phases
// are reported as ms/op metrics.
func BenchmarkPluginStart(b *testing.B) {
	for _, set := range startSets {
		for _, cache := range []string{"warm", "cold"} {
			b.Run(set.name+"/"+cache, func(b *testing.B) {
				wasm := readStartSet(b, set.modules)
				dir := startCacheDir()
				if cache == "warm" {
					// Fill the cache once, outside the measurement.
					loadOnce(b, dir, set.modules, wasm, "")
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
					phases = loadOnce(b, dir, set.modules, wasm, want)
				}
				for k, d := range phases {
					b.ReportMetric(float64(d.Microseconds())/1000, k+"-ms")
				}
			})
		}
	}
}

// BenchmarkPluginStartProcess is BenchmarkPluginStart's header-go/warm
// and rust-builtins/cold in a new process each time, as a restart is: the
// Go heap starts small there and the runtime's first uses are paid,
// which a load in a long-running benchmark process does not show.
// "process-ms" is the child's whole life (exec to exit), "process-cpu-ms"
// the CPU time it used, the other metrics its load phases.
func BenchmarkPluginStartProcess(b *testing.B) {
	for _, c := range []struct{ set, cache string }{{"header-go", "warm"}, {"rust-builtins", "cold"}} {
		b.Run(c.set+"/"+c.cache, func(b *testing.B) {
			set := startSet(c.set)
			wasm := readStartSet(b, set)
			dir := startCacheDir()
			if c.cache == "warm" {
				loadOnce(b, dir, set, wasm, "")
			}
			sums := map[string]float64{}
			b.ResetTimer()
			for range b.N {
				if c.cache == "cold" {
					dir = b.TempDir()
				}
				t := time.Now()
				cmd := exec.Command(os.Args[0], "-test.run=^TestPluginStartChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), "SLUICE_START_CHILD="+c.set, "SLUICE_START_CACHE="+dir)
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				sums["process-ms"] += float64(time.Since(t).Microseconds()) / 1000
				// CPU time holds better than wall time on a shared machine.
				cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				sums["process-cpu-ms"] += float64(cpu.Microseconds()) / 1000
				i := bytes.Index(out, []byte("phases "))
				if i < 0 {
					b.Fatalf("child said %q", out)
				}
				line, _, _ := bytes.Cut(out[i+len("phases "):], []byte("\n"))
				var phases map[string]float64
				if err := json.Unmarshal(line, &phases); err != nil {
					b.Fatalf("child said %q: %v", out, err)
				}
				for k, v := range phases {
					sums[k+"-ms"] += v
				}
			}
			for k, v := range sums {
				b.ReportMetric(v/float64(b.N), k)
			}
		})
	}
}

// TestPluginStartChild is BenchmarkPluginStartProcess's child: it loads
// the set named by SLUICE_START_CHILD once from the cache directory
// SLUICE_START_CACHE and prints the phases in ms. Without the variable it
// is skipped.
func TestPluginStartChild(t *testing.T) {
	name := os.Getenv("SLUICE_START_CHILD")
	if name == "" {
		t.Skip("run by BenchmarkPluginStartProcess")
	}
	set := startSet(name)
	if set == nil {
		t.Fatalf("no start set %q", name)
	}
	phases := loadOnce(t, os.Getenv("SLUICE_START_CACHE"), set, readStartSet(t, set), "")
	ms := map[string]float64{}
	for k, d := range phases {
		ms[k] = float64(d.Microseconds()) / 1000
	}
	b, _ := json.Marshal(ms)
	fmt.Printf("phases %s\n", b)
}

// loadOnce makes an engine on the cache dir, loads the modules as plugins
// and closes them all, timing the phases of the load; want, when set, is
// where the compiled code must have come from.
func loadOnce(tb testing.TB, dir string, mods []startModule, wasm [][]byte, want CompileCache) map[string]time.Duration {
	ctx := context.Background()
	phases := map[string]time.Duration{}
	t0 := time.Now()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: dir, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close(ctx)
	phases["engine"] = time.Since(t0)
	var loaded []*Plugin
	defer func() {
		for _, p := range loaded {
			p.Close(ctx)
		}
	}()
	for i, m := range mods {
		// As the runtime does: check a module from a file, then load it
		// (the built-in modules are part of the binary).
		t := time.Now()
		if !m.trusted {
			if err := CheckModule(wasm[i]); err != nil {
				tb.Fatal(err)
			}
			phases["check"] += time.Since(t)
		}
		t = time.Now()
		// The Go built-in module serves each plugin by root id; add-header
		// is one of them. The other modules ignore the root id.
		p, err := e.Load(ctx, PluginConfig{Name: m.name, RootID: m.name, Wasm: wasm[i], Trusted: m.trusted,
			Instances: 4, PluginConfig: []byte(m.config)})
		if err != nil {
			tb.Fatalf("%s: %v", m.name, err)
		}
		loaded = append(loaded, p)
		phases["load"] += time.Since(t)
		if want != "" && p.CompileCache() != want {
			tb.Errorf("%s: compile cache %q, want %q", m.name, p.CompileCache(), want)
		}
	}
	phases["total"] = time.Since(t0)
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
