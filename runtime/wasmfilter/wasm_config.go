package wasmfilter

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/config"
)

// WasmPluginConfig turns a [[plugins]] entry and its module's bytes into
// what hostabi.Engine.Load takes: config tables become JSON (the *_raw
// strings pass verbatim), failure = "open" fails open, and built-in modules
// run trusted (no per-callback deadline, see hostabi.PluginConfig.Trusted).
func WasmPluginConfig(pc config.Plugin, module []byte) (hostabi.PluginConfig, error) {
	pluginCfg, err := configBytes(pc.ConfigRaw, pc.Config)
	if err != nil {
		return hostabi.PluginConfig{}, fmt.Errorf("plugin %q: config: %w", pc.Name, err)
	}
	vmCfg, err := configBytes(pc.VMConfigRaw, pc.VMConfig)
	if err != nil {
		return hostabi.PluginConfig{}, fmt.Errorf("plugin %q: vm_config: %w", pc.Name, err)
	}
	return hostabi.PluginConfig{
		Name:         pc.Name,
		RootID:       pc.RootID,
		VMID:         pc.VMID,
		Wasm:         module,
		PluginConfig: pluginCfg,
		VMConfig:     vmCfg,
		FailOpen:     pc.Failure == "open",
		Instances:    pc.VM.Instances,
		MemoryLimit:  uint64(max(pc.VM.MemoryLimit, 0)),
		CallTimeout:  pc.VM.CallTimeout.D(),
		Trusted:      strings.HasPrefix(pc.Wasm, "builtin:"),
	}, nil
}

func configBytes(raw string, table map[string]any) ([]byte, error) {
	if raw != "" {
		return []byte(raw), nil
	}
	if table == nil {
		return nil, nil
	}
	return json.Marshal(table)
}
