package interrupt

import "fmt"

// ExportParams returns the parameter count of each function the module
// exports, by export name, reading only its type, import, function and
// export sections. A host needs no more of a module's exports; asking
// wazero instead (CompiledModule.ExportedFunctions, or a function's
// Definition) makes it build a definition for every function of the
// module at once and keep them with the compiled module: 0.4 MiB of Go
// heap for sluice's built-ins.
func ExportParams(module []byte) (map[string]int, error) {
	if len(module) < 8 {
		return nil, errTruncated
	}
	m := &moduleInfo{dataCount: -1, dataSegs: -1, start: -1}
	m.bodyIndex, m.constIndex = m.inBody, m.check
	exports := map[string]int{}
	r := &reader{b: module, pos: 8}
	for r.pos < len(r.b) {
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if uint64(size) > uint64(len(r.b)-r.pos) {
			return nil, fmt.Errorf("%s section runs past the module", sectionName(id))
		}
		sr := &reader{b: r.b[r.pos : r.pos+int(size)]}
		r.pos += int(size)
		switch id {
		case 1, secImport, 3:
			if err := m.section(id, sr); err != nil {
				return nil, fmt.Errorf("%s section: %w", sectionName(id), err)
			}
		case secExport:
			n, err := sr.count(maxExports, "exports")
			if err != nil {
				return nil, err
			}
			for range n {
				name, err := sr.name()
				if err != nil {
					return nil, err
				}
				kind, err := sr.byte()
				if err != nil {
					return nil, err
				}
				i, err := sr.u32()
				if err != nil {
					return nil, err
				}
				if kind != 0 {
					continue
				}
				if i >= uint32(len(m.funcs)) {
					return nil, fmt.Errorf("export %q: function %d is not declared", name, i)
				}
				exports[name] = int(m.params[m.funcs[i]])
			}
			return exports, nil
		}
	}
	return exports, nil
}

// FuncImport is a function a module imports, with its signature as the
// binary format's one-byte value types, as wazero reports them (see
// shortType).
type FuncImport struct {
	Module, Name    string
	Params, Results []byte
}

// Imports lists the functions and memories (as "module.name") a module
// imports, reading only its type and import sections, for the same
// reason as ExportParams: wazero's CompiledModule.ImportedFunctions builds
// and keeps a definition for every function of the module, 0.5 MiB of Go
// heap for two small Go filters.
func Imports(module []byte) (funcs []FuncImport, memories []string, err error) {
	if len(module) < 8 {
		return nil, nil, errTruncated
	}
	m := &moduleInfo{dataCount: -1, dataSegs: -1, start: -1}
	var types [][2][]byte
	r := &reader{b: module, pos: 8}
	for r.pos < len(r.b) {
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return nil, nil, err
		}
		if uint64(size) > uint64(len(r.b)-r.pos) {
			return nil, nil, fmt.Errorf("%s section runs past the module", sectionName(id))
		}
		sr := &reader{b: r.b[r.pos : r.pos+int(size)]}
		r.pos += int(size)
		switch id {
		case 1:
			if types, err = funcTypes(sr); err != nil {
				return nil, nil, fmt.Errorf("type section: %w", err)
			}
		case secImport:
			n, err := sr.count(maxImports, "imports")
			if err != nil {
				return nil, nil, err
			}
			for i := range n {
				module, err := sr.name()
				if err != nil {
					return nil, nil, err
				}
				name, err := sr.name()
				if err != nil {
					return nil, nil, err
				}
				kind, err := sr.byte()
				if err != nil {
					return nil, nil, err
				}
				switch kind {
				case 0x00:
					t, err := sr.u32()
					if err != nil {
						return nil, nil, err
					}
					if t >= uint32(len(types)) {
						return nil, nil, fmt.Errorf("import %d has type %d; the module has %d types", i, t, len(types))
					}
					funcs = append(funcs, FuncImport{Module: module, Name: name, Params: types[t][0], Results: types[t][1]})
				case 0x01:
					err = m.table(sr)
				case 0x02:
					memories = append(memories, module+"."+name)
					err = m.memory(sr)
				case 0x03:
					if err = sr.valType(); err == nil {
						_, err = sr.byte()
					}
				case 0x04:
					err = m.tag(sr)
				default:
					return nil, nil, fmt.Errorf("import %d: unknown kind %#x", i, kind)
				}
				if err != nil {
					return nil, nil, fmt.Errorf("import %d: %w", i, err)
				}
			}
			return funcs, memories, nil
		}
	}
	return funcs, memories, nil
}

// funcTypes reads a type section: each type's parameter and result types.
func funcTypes(r *reader) ([][2][]byte, error) {
	n, err := r.count(maxTypes, "types")
	if err != nil {
		return nil, err
	}
	types := make([][2][]byte, 0, n)
	for i := range n {
		if form, err := r.byte(); err != nil {
			return nil, err
		} else if form != 0x60 {
			return nil, fmt.Errorf("type %d: form %#x is not a function type", i, form)
		}
		var sig [2][]byte
		for k, limit := range [2]uint32{maxParams, maxResults} {
			c, err := r.count(limit, "values")
			if err != nil {
				return nil, fmt.Errorf("type %d: %w", i, err)
			}
			sig[k] = make([]byte, 0, c)
			for range c {
				from := r.pos
				if err := r.valType(); err != nil {
					return nil, err
				}
				sig[k] = append(sig[k], shortType(r.b[from:r.pos]))
			}
		}
		types = append(types, sig)
	}
	return types, nil
}

// shortType is a value type's one-byte form as wazero reports it: a
// reference (ref null? ht) as the abstract heap type's short form
// (funcref, externref, ...), and a reference to a function type as
// funcref.
func shortType(t []byte) byte {
	if len(t) > 1 && (t[0] == 0x63 || t[0] == 0x64) {
		if len(t) == 2 && t[1] >= 0x40 && t[1] < 0x80 {
			return t[1]
		}
		return 0x70
	}
	return t[0]
}
