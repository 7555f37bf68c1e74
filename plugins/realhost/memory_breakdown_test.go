package realhost

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/goref"
)

// BenchmarkMemoryBreakdown logs where the built-in module's memory goes,
// step by step: process RSS, executable anonymous mappings (wazero's
// compiled code), the Go heap after a collection, and the instances'
// linear memory; it reports the last step's figures. A measurement, not a
// test: RSS depends on the machine. Run it once:
// go test -run - -bench MemoryBreakdown -benchtime 1x ./plugins/realhost/
// (SLUICE_MEMORY_BREAKDOWN=path.wasm measures that module instead).
func BenchmarkMemoryBreakdown(b *testing.B) {
	for b.Loop() {
		memoryBreakdown(b)
	}
}

func memoryBreakdown(t *testing.B) {
	ctx := context.Background()
	step := func(what string) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss, exec := procMemory(t)
		t.Logf("%-32s RSS %6.1f MiB  exec %5.2f MiB  heap live %5.1f MiB  heap sys %5.1f MiB",
			what, mib(rss), mib(exec), mib(ms.HeapAlloc), mib(ms.HeapSys-ms.HeapReleased))
		t.ReportMetric(mib(rss), "RSS-MiB")
		t.ReportMetric(mib(exec), "exec-MiB")
		t.ReportMetric(mib(ms.HeapAlloc), "heap-live-MiB")
	}
	step("start")
	mod := goref.Module()
	rootID, config := "add-header", []byte(`{"request_headers":{"x-a":"1"}}`)
	if path := os.Getenv("SLUICE_MEMORY_BREAKDOWN"); strings.HasSuffix(path, ".wasm") {
		var err error
		if mod, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
		// A module named after a built-in (an earlier build's
		// rust/NAME.wasm) runs NAME with its defaults.
		if name := strings.TrimSuffix(filepath.Base(path), ".wasm"); name != rootID && plugins.Has(name) {
			rootID, config = name, nil
		}
	}
	_ = sha256.Sum256(mod)
	step("embedded module read")
	cache := os.Getenv("SLUICE_WASM_CACHE")
	if cache == "" {
		cache = "-"
	}
	e, err := hostabi.NewEngine(ctx, hostabi.EngineConfig{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	step("engine")
	var ps []*hostabi.Plugin
	for i := range 3 {
		// Distinct vm_ids: each load is one more instance of the same
		// compiled module.
		p, err := e.Load(ctx, hostabi.PluginConfig{Name: fmt.Sprint("p", i), RootID: rootID, VMID: fmt.Sprint("vm", i),
			Wasm: mod, PluginConfig: config, Trusted: true})
		if err != nil {
			t.Fatal(err)
		}
		// A built-in missing from the compile cache starts on the
		// interpreter: measure the compiled code it moves to.
		if err := p.WaitCompiled(ctx); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
		var linear uint64
		for _, p := range ps {
			linear += p.Stats().MemoryBytes
		}
		step(fmt.Sprintf("compiled + %d instance(s), linear %.1f MiB", i+1, mib(linear)))
	}
	for _, p := range ps {
		p.Close(ctx)
	}
	step("plugins closed")
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// procMemory returns the process RSS and the RSS of anonymous executable
// mappings, in bytes.
func procMemory(t *testing.B) (rss, exec uint64) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps")
	}
	defer f.Close()
	anonExec := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && len(fields) >= 5 {
			anonExec = len(fields) == 5 && strings.Contains(fields[1], "x")
			continue
		}
		if fields[0] == "Rss:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			rss += kb << 10
			if anonExec {
				exec += kb << 10
			}
		}
	}
	return rss, exec
}
