package server

import (
	"strconv"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// registerPluginMetrics puts each loaded plugin's health on /metrics, read
// from the plugin set of the moment at every scrape (the admin /plugins
// page shows the same figures as JSON). Instances, memory, calls and
// failures (instances that broke and were replaced) are those of the
// plugin's VM, which plugins with one vm_id share (the built-ins do); the
// Wasm host also counts failures by cause in wasm_instance_failures_total.
func (s *Server) registerPluginMetrics() {
	// each makes a family's scrape function: one sample per plugin.
	each := func(sample func(pluginStatus, hostabi.Stats) stats.Sample) func() []stats.Sample {
		return func() []stats.Sample {
			s.mu.Lock()
			st := s.plugins.status()
			s.mu.Unlock()
			out := make([]stats.Sample, 0, len(st))
			for _, p := range st {
				rt, ok := p.Runtime.(hostabi.Stats)
				if !ok {
					continue // no version loaded yet (see /plugins)
				}
				out = append(out, sample(p, rt))
			}
			return out
		}
	}
	// vm is a per-plugin figure of its VM.
	vm := func(value func(hostabi.Stats) uint64) func() []stats.Sample {
		return each(func(p pluginStatus, rt hostabi.Stats) stats.Sample {
			return stats.Sample{Labels: []string{"plugin", p.Name, "vm_id", rt.VMID}, Value: float64(value(rt))}
		})
	}
	const shared = " (plugins with one vm_id may share a VM: do not sum over plugins)."
	s.reg.Func("sluice_wasm_plugin_loaded", "1 for each plugin loaded and serving, with its module.", stats.KindGauge,
		each(func(p pluginStatus, rt hostabi.Stats) stats.Sample {
			return stats.Sample{Labels: []string{"plugin", p.Name, "wasm", p.Wasm, "sha256", p.SHA256, "abi", rt.ABI}, Value: 1}
		}))
	s.reg.Func("sluice_wasm_plugin_instances", "Wasm instances of the plugin's VM"+shared, stats.KindGauge,
		vm(func(rt hostabi.Stats) uint64 { return uint64(rt.Instances) }))
	s.reg.Func("sluice_wasm_plugin_memory_bytes", "Linear memory of the plugin's VM's instances"+shared, stats.KindGauge,
		vm(func(rt hostabi.Stats) uint64 { return rt.MemoryBytes }))
	s.reg.Func("sluice_wasm_plugin_active_streams", "Streams the plugin is in right now.", stats.KindGauge,
		vm(func(rt hostabi.Stats) uint64 { return uint64(rt.ActiveStreams) }))
	s.reg.Func("sluice_wasm_plugin_calls_total", "Callbacks into the plugin's VM"+shared, stats.KindCounter,
		vm(func(rt hostabi.Stats) uint64 { return rt.Calls }))
	s.reg.Func("sluice_wasm_plugin_failing", "1 while the plugin is failing: its instances broke "+strconv.Itoa(hostabi.FailingAfter)+" times or more in a row with no stream served well since (see /plugins).", stats.KindGauge,
		each(func(p pluginStatus, rt hostabi.Stats) stats.Sample {
			v := 0.0
			if rt.Failing {
				v = 1
			}
			return stats.Sample{Labels: []string{"plugin", p.Name}, Value: v}
		}))
	s.reg.Func("sluice_wasm_plugin_failures_total", "Instances of the plugin's VM that broke (a trap, the deadline, the memory limit) and were replaced"+shared, stats.KindCounter,
		vm(func(rt hostabi.Stats) uint64 { return rt.Failures }))
}
