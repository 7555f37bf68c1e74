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
