package hostabi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-proxy/sluice/hostabi/internal/interrupt"
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

// checkImports compares the imports of wasm (mod, compiled) with what rt's
// host modules (env, WASI, Emscripten's env functions) export. The list
// comes from the module's bytes: asking mod would make wazero build and
// keep a definition of every function of the module.
func checkImports(rt wazero.Runtime, wasm []byte, mod wazero.CompiledModule) error {
	funcs, memories, err := interrupt.Imports(wasm)
	if err != nil {
		// wazero compiled what this reader could not read: ask wazero.
		funcs, memories = nil, nil
		for _, def := range mod.ImportedFunctions() {
			module, name, _ := def.Import()
			funcs = append(funcs, interrupt.FuncImport{Module: module, Name: name, Params: def.ParamTypes(), Results: def.ResultTypes()})
		}
		for _, def := range mod.ImportedMemories() {
			module, name, _ := def.Import()
			memories = append(memories, module+"."+name)
		}
	}
	var e ImportError
	for _, f := range funcs {
		key := f.Module + "." + f.Name
		var have api.FunctionDefinition
		if host := rt.Module(f.Module); host != nil {
			have = host.ExportedFunctionDefinitions()[f.Name]
		}
		switch {
		case have == nil:
			e.Missing = append(e.Missing, key)
		case !slices.Equal(f.Params, have.ParamTypes()) || !slices.Equal(f.Results, have.ResultTypes()):
			e.Mismatched = append(e.Mismatched, fmt.Sprintf("%s: the module imports %s, the host has %s",
				key, signature(f.Params, f.Results), signature(have.ParamTypes(), have.ResultTypes())))
		}
	}
	for _, m := range memories {
		// The host exports functions only: a guest must define its memory.
		e.Missing = append(e.Missing, m+" (memory)")
	}
	if len(e.Missing) == 0 && len(e.Mismatched) == 0 {
		return nil
	}
	return &e
}

// signature writes a function type as "(i32 i64) -> i32".
func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, " ") + ")"
	}
	return names(params) + " -> " + names(results)
}
