package hostabi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// ImportError: the module imports functions (or memories) the host does
// not provide, or provides with another signature. wazero names only the
// first unresolved import when it instantiates; the host checks the whole
// import section against its host modules first, so one load names them
// all, before any request could reach one.
type ImportError struct {
	// Missing are "module.name" of imports no host module exports.
	Missing []string
	// Mismatched are imports the host exports with another signature, as
	// "module.name: the module imports (i32) -> i32, the host has (i32 i32) -> i32".
	Mismatched []string
}

func (e *ImportError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d not provided by the host: %s", len(e.Missing), strings.Join(e.Missing, ", ")))
	}
	if len(e.Mismatched) > 0 {
		parts = append(parts, fmt.Sprintf("%d with the wrong signature: %s", len(e.Mismatched), strings.Join(e.Mismatched, "; ")))
	}
	return "linking: the module's imports do not match the host: " + strings.Join(parts, "; ")
}

// checkImports compares mod's imports with what rt's host modules (env,
// WASI, Emscripten's env functions) export.
func checkImports(rt wazero.Runtime, mod wazero.CompiledModule) error {
	var e ImportError
	for _, def := range mod.ImportedFunctions() {
		module, name, _ := def.Import()
		key := module + "." + name
		var have api.FunctionDefinition
		if host := rt.Module(module); host != nil {
			have = host.ExportedFunctionDefinitions()[name]
		}
		switch {
		case have == nil:
			e.Missing = append(e.Missing, key)
		case !slices.Equal(def.ParamTypes(), have.ParamTypes()) || !slices.Equal(def.ResultTypes(), have.ResultTypes()):
			e.Mismatched = append(e.Mismatched, fmt.Sprintf("%s: the module imports %s, the host has %s",
				key, signature(def), signature(have)))
		}
	}
	for _, def := range mod.ImportedMemories() {
		module, name, _ := def.Import()
		// The host exports functions only: a guest must define its memory.
		e.Missing = append(e.Missing, module+"."+name+" (memory)")
	}
	if len(e.Missing) == 0 && len(e.Mismatched) == 0 {
		return nil
	}
	return &e
}

// signature writes a function type as "(i32 i64) -> i32".
func signature(d api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, " ") + ")"
	}
	return names(d.ParamTypes()) + " -> " + names(d.ResultTypes())
}
