package interrupt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Limits a module must keep: the WebAssembly JS API's implementation
// limits, which the browsers' engines agreed on. Real modules stay far
// below them. With them, and with every count checked against the bytes
// that remain, nothing a decoder allocates for a module can grow past a
// small multiple of its size: wazero's decoder makes a slice as long as
// a section's declared count before reading a single entry, so a 190-byte
// module claiming 2^32 functions would otherwise end the process.
const (
	maxTypes        = 1_000_000
	maxFunctions    = 1_000_000
	maxImports      = 100_000
	maxExports      = 100_000
	maxGlobals      = 1_000_000
	maxTags         = 1_000_000
	maxDataSegments = 100_000
	maxElemSegments = 10_000_000
	maxTables       = 100_000
	maxMemories     = 100_000
	maxTableSize    = 10_000_000
	maxMemoryPages  = 65_536
	maxParams       = 1_000
	maxResults      = 1_000
	maxLocals       = 50_000 // parameters included
	maxBodySize     = 7_654_321
)

var sectionNames = map[byte]string{0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
	6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "data count", 13: "tag"}

// InvalidError is a module refused by Validate: malformed, over a limit,
// or naming something it does not declare. Unlike the rewriter's other
// errors it is no reason to fall back to anything: the module must be
// refused.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return "invalid Wasm module: " + e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// Validate checks a module as written, in one pass and with memory
// bounded by the module's size: the header, each section's size against
// the bytes left, the sections' order, every count against its limit and
// against the bytes left, and every index an instruction, an export, an
// element or a constant expression names against what the module
// declares. Type checking of instructions is left to wazero, which
// compiles the module after this: the rewrite adds instructions that
// leave the operand stack as they found it, so it cannot make a module
// that is ill-typed as written well-typed; the indexes it adds (two
// globals) are the only thing that could make an invalid module valid,
// and this check refuses any module that names them.
func Validate(module []byte) error {
	_, err := validate(module)
	return err
}

// Checked is a module that passed Validate, with what the rewrite needs
// to know of it, so a caller that validated a module first (to refuse it
// early) does not pay for the pass again in InstrumentChecked.
type Checked struct{ info *moduleInfo }

// Check is Validate, keeping what it learnt for InstrumentChecked.
func Check(module []byte) (*Checked, error) {
	info, err := validate(module)
	if err != nil {
		return nil, err
	}
	return &Checked{info: info}, nil
}

// moduleInfo is what validation keeps of a module: counts, and one
// number per type and function (bounded by the limits above).
type moduleInfo struct {
	params   []uint32 // each type's parameter count
	funcs    []uint32 // each function's type, imports first
	declared uint32   // functions the function section declares
	counts   [numSpaces]uint32
	// dataCount is the data count section's value, -1 without one;
	// dataSegs the data section's count, -1 without one.
	dataCount, dataSegs int64
	// start is the start section's function, -1 without one.
	start           int64
	sawCode         bool
	importedGlobals uint32
	// abiExport: the module exports a proxy_abi_version_* function, so a
	// refusal can say whether it is a proxy-wasm filter at all.
	abiExport bool

	// The function body being checked: its locals (parameters included)
	// and block depth, for inBody, which bodyIndex holds as a func value
	// made once.
	locals    uint64
	depth     uint32
	bodyIndex func(space, uint32) error
	// constIndex is check as a func value made once, for constExpr.
	constIndex func(space, uint32) error
}

// validate is Validate, returning what it learnt of the module.
func validate(module []byte) (*moduleInfo, error) {
	m, err := inspect(module)
	if err != nil {
		return nil, &InvalidError{err}
	}
	return m, nil
}

func inspect(module []byte) (*moduleInfo, error) {
	if len(module) < 8 || !bytes.Equal(module[:4], []byte("\x00asm")) {
		return nil, errors.New(`not a Wasm binary module (it does not start with "\0asm")`)
	}
	if v := binary.LittleEndian.Uint32(module[4:8]); v != 1 {
		return nil, fmt.Errorf("Wasm binary format version %d; only version 1 is supported", v)
	}
	m := &moduleInfo{dataCount: -1, dataSegs: -1, start: -1}
	m.bodyIndex, m.constIndex = m.inBody, m.check
	r := &reader{b: module, pos: 8}
	last := 0
	for r.pos < len(r.b) {
		start := r.pos
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("section header at byte %d: %w", start, err)
		}
		left := len(r.b) - r.pos
		if uint64(size) > uint64(left) {
			return nil, fmt.Errorf("%s section at byte %d claims %d bytes; only %d remain in the module", sectionName(id), start, size, left)
		}
		content := r.b[r.pos : r.pos+int(size)]
		r.pos += int(size)
		if id != secCustom {
			o, known := order[id]
			if !known {
				return nil, fmt.Errorf("unknown section id %d at byte %d", id, start)
			}
			if o <= last {
				return nil, fmt.Errorf("%s section at byte %d is repeated or out of order", sectionName(id), start)
			}
			last = o
		}
		sr := &reader{b: content}
		if err := m.section(id, sr); err != nil {
			return nil, fmt.Errorf("%s section at byte %d: %w", sectionName(id), start, err)
		}
		if id != secCustom && sr.pos != len(sr.b) {
			return nil, fmt.Errorf("%s section at byte %d: %d bytes past its last entry", sectionName(id), start, len(sr.b)-sr.pos)
		}
	}
	if m.declared > 0 && !m.sawCode {
		return nil, fmt.Errorf("the function section declares %d functions but the module has no code section", m.declared)
	}
	if m.dataCount >= 0 && m.dataCount != max(m.dataSegs, 0) {
		return nil, fmt.Errorf("the data count section says %d segments, the data section has %d", m.dataCount, max(m.dataSegs, 0))
	}
	if m.counts[spaceMemory] == 0 {
		// A filter exports its memory; and the deadline's checks grow
		// memory 0 to exit to Go. Without an ABI export either, the
		// module is not a filter: say that first, as Envoy does.
		if !m.abiExport {
			return nil, errors.New("missing or unknown proxy-wasm ABI version and no memory: is it a proxy-wasm filter?")
		}
		return nil, errors.New("the module has no memory (a proxy-wasm filter exports one)")
	}
	return m, nil
}

func sectionName(id byte) string {
	if n, ok := sectionNames[id]; ok {
		return n
	}
	return fmt.Sprintf("id %d", id)
}

// count reads a vector's length: at most limit, and no more than the
// bytes left, since every entry takes one byte at least.
func (r *reader) count(limit uint32, what string) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if n > limit {
		return 0, fmt.Errorf("%d %s: more than the limit of %d", n, what, limit)
	}
	if left := len(r.b) - r.pos; uint64(n) > uint64(left) {
		return 0, fmt.Errorf("claims %d %s in %d bytes", n, what, left)
	}
	return n, nil
}

// entries reads a vector of at most limit entries, each with one.
func (r *reader) entries(limit uint32, what string, one func(*reader) error) error {
	n, err := r.count(limit, what)
	if err != nil {
		return err
	}
	for range n {
		if err := one(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *moduleInfo) section(id byte, r *reader) error {
	switch id {
	case secCustom:
		name, err := r.name()
		if err != nil {
			return err
		}
		if name == "name" {
			return nameSection(r)
		}
		return nil
	case 1:
		return m.typeSection(r)
	case secImport:
		return m.importSection(r)
	case 3:
		n, err := r.count(maxFunctions-uint32(len(m.funcs)), "functions")
		if err != nil {
			return err
		}
		for i := range n {
			t, err := r.u32()
			if err != nil {
				return err
			}
			if t >= uint32(len(m.params)) {
				return fmt.Errorf("function %d has type %d; the module has %d types", i, t, len(m.params))
			}
			m.funcs = append(m.funcs, t)
		}
		m.declared = n
	case 4:
		return r.entries(maxTables-m.counts[spaceTable], "tables", m.table)
	case secMemory:
		return r.entries(maxMemories-m.counts[spaceMemory], "memories", m.memory)
	case 13:
		return r.entries(maxTags-m.counts[spaceTag], "tags", m.tag)
	case secGlobal:
		n, err := r.count(maxGlobals-m.counts[spaceGlobal], "globals")
		if err != nil {
			return err
		}
		for i := range n {
			if err := r.valType(); err != nil {
				return err
			}
			if mut, err := r.byte(); err != nil || mut > 1 {
				return fmt.Errorf("global %d: bad mutability", i)
			}
			// A global's initializer sees the globals before it.
			if err := m.constExpr(r); err != nil {
				return fmt.Errorf("global %d: %w", m.counts[spaceGlobal], err)
			}
			m.counts[spaceGlobal]++
		}
	case secExport:
		return m.exportSection(r)
	case 8:
		f, err := r.u32()
		if err != nil {
			return err
		}
		m.start = int64(f)
		return m.check(spaceFunc, f)
	case 9:
		return m.elementSection(r)
	case 12:
		n, err := r.u32()
		if err != nil {
			return err
		}
		if n > maxDataSegments {
			return fmt.Errorf("%d data segments: more than the limit of %d", n, maxDataSegments)
		}
		m.dataCount = int64(n)
		m.counts[spaceData] = n
	case secCode:
		return m.codeSection(r)
	case 11:
		return m.dataSection(r)
	}
	return nil
}

func (m *moduleInfo) typeSection(r *reader) error {
	n, err := r.count(maxTypes, "types")
	if err != nil {
		return err
	}
	m.params = make([]uint32, 0, n)
	for i := range n {
		if form, err := r.byte(); err != nil {
			return err
		} else if form != 0x60 {
			return fmt.Errorf("type %d: form %#x is not a function type", i, form)
		}
		params, err := r.count(maxParams, "parameters")
		if err != nil {
			return fmt.Errorf("type %d: %w", i, err)
		}
		for range params {
			if err := r.valType(); err != nil {
				return err
			}
		}
		results, err := r.count(maxResults, "results")
		if err != nil {
			return fmt.Errorf("type %d: %w", i, err)
		}
		for range results {
			if err := r.valType(); err != nil {
				return err
			}
		}
		m.params = append(m.params, params)
	}
	return nil
}

func (m *moduleInfo) importSection(r *reader) error {
	n, err := r.count(maxImports, "imports")
	if err != nil {
		return err
	}
	for i := range n {
		if _, err := r.name(); err != nil {
			return err
		}
		if _, err := r.name(); err != nil {
			return err
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0x00:
			t, err := r.u32()
			if err != nil {
				return err
			}
			if t >= uint32(len(m.params)) {
				return fmt.Errorf("import %d has type %d; the module has %d types", i, t, len(m.params))
			}
			m.funcs = append(m.funcs, t)
		case 0x01:
			err = m.table(r)
		case 0x02:
			err = m.memory(r)
		case 0x03:
			if err = r.valType(); err == nil {
				if mut, e := r.byte(); e != nil || mut > 1 {
					err = errors.New("bad mutability")
				}
			}
			m.counts[spaceGlobal]++
			m.importedGlobals++
		case 0x04:
			err = m.tag(r)
		default:
			return fmt.Errorf("import %d: unknown kind %#x", i, kind)
		}
		if err != nil {
			return fmt.Errorf("import %d: %w", i, err)
		}
	}
	return nil
}

// table reads a table type (with an initializer when it starts 0x40 0x00).
func (m *moduleInfo) table(r *reader) error {
	if m.counts[spaceTable] >= maxTables {
		return fmt.Errorf("more than %d tables", maxTables)
	}
	init := r.pos < len(r.b) && r.b[r.pos] == 0x40
	if init {
		r.pos++
		if c, err := r.byte(); err != nil || c != 0x00 {
			return errors.New("bad table prefix")
		}
	}
	if err := r.valType(); err != nil {
		return err
	}
	// A table's maximum is only a bound on growth: any value is fine.
	if err := limits(r, 0x01, maxTableSize, ^uint32(0), "table"); err != nil {
		return err
	}
	if init {
		if err := m.constExpr(r); err != nil {
			return err
		}
	}
	m.counts[spaceTable]++
	return nil
}

func (m *moduleInfo) memory(r *reader) error {
	if m.counts[spaceMemory] >= maxMemories {
		return fmt.Errorf("more than %d memories", maxMemories)
	}
	if err := limits(r, 0x03, maxMemoryPages, maxMemoryPages, "memory"); err != nil {
		return err
	}
	m.counts[spaceMemory]++
	return nil
}

func (m *moduleInfo) tag(r *reader) error {
	if _, err := r.byte(); err != nil {
		return err
	}
	t, err := r.u32()
	if err != nil {
		return err
	}
	if err := m.check(spaceType, t); err != nil {
		return err
	}
	m.counts[spaceTag]++
	return nil
}

// limits reads a table's or a memory's limits: flags within mask (bit 0:
// a maximum follows; for memories bit 1: shared), the minimum within
// minCap, the maximum within maxCap.
func limits(r *reader, mask byte, minCap, maxCap uint32, what string) error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if flags&^mask != 0 {
		return fmt.Errorf("%s limits flags %#x are not supported", what, flags)
	}
	lo, err := r.u32()
	if err != nil {
		return err
	}
	if lo > minCap {
		return fmt.Errorf("%s minimum %d is over the limit of %d", what, lo, minCap)
	}
	if flags&1 != 0 {
		hi, err := r.u32()
		if err != nil {
			return err
		}
		if hi > maxCap {
			return fmt.Errorf("%s maximum %d is over the limit of %d", what, hi, maxCap)
		}
		if hi < lo {
			return fmt.Errorf("%s maximum %d is below its minimum %d", what, hi, lo)
		}
	}
	return nil
}

func (m *moduleInfo) exportSection(r *reader) error {
	n, err := r.count(maxExports, "exports")
	if err != nil {
		return err
	}
	spaces := [...]space{spaceFunc, spaceTable, spaceMemory, spaceGlobal, spaceTag}
	for range n {
		name, err := r.name()
		if err != nil {
			return err
		}
		if name == Export || name == BudgetExport || name == StartExport || name == RefillExport {
			// Refused, not a reason to fall back to wazero's checks: the
			// guest would then choose the path its deadline takes.
			return fmt.Errorf("export %q: a name the host reserves", name)
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		if kind == 0 && strings.HasPrefix(name, "proxy_abi_version_") {
			m.abiExport = true
		}
		if int(kind) >= len(spaces) {
			return fmt.Errorf("export %q: unknown kind %#x", name, kind)
		}
		i, err := r.u32()
		if err != nil {
			return err
		}
		if err := m.check(spaces[kind], i); err != nil {
			return fmt.Errorf("export %q: %w", name, err)
		}
	}
	return nil
}

func (m *moduleInfo) elementSection(r *reader) error {
	n, err := r.count(maxElemSegments, "element segments")
	if err != nil {
		return err
	}
	m.counts[spaceElem] = n
	for i := range n {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return fmt.Errorf("element segment %d: unknown flags %d", i, flags)
		}
		exprs := flags&4 != 0
		if flags&1 == 0 { // active: a table and an offset
			var table uint32
			if flags&2 != 0 {
				if table, err = r.u32(); err != nil {
					return err
				}
			}
			if err := m.check(spaceTable, table); err != nil {
				return fmt.Errorf("element segment %d: %w", i, err)
			}
			if err := m.constExpr(r); err != nil {
				return fmt.Errorf("element segment %d: %w", i, err)
			}
		}
		if flags&3 != 0 { // an element kind or reference type
			if exprs {
				err = r.valType()
			} else if kind, e := r.byte(); e != nil || kind != 0x00 {
				err = errors.New("bad element kind")
			}
			if err != nil {
				return fmt.Errorf("element segment %d: %w", i, err)
			}
		}
		items, err := r.count(maxTableSize, "elements")
		if err != nil {
			return fmt.Errorf("element segment %d: %w", i, err)
		}
		for range items {
			if exprs {
				err = m.constExpr(r)
			} else {
				var f uint32
				if f, err = r.u32(); err == nil {
					err = m.check(spaceFunc, f)
				}
			}
			if err != nil {
				return fmt.Errorf("element segment %d: %w", i, err)
			}
		}
	}
	return nil
}

func (m *moduleInfo) dataSection(r *reader) error {
	n, err := r.count(maxDataSegments, "data segments")
	if err != nil {
		return err
	}
	m.dataSegs = int64(n)
	for i := range n {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		switch flags {
		case 0, 2: // active: a memory and an offset
			var mem uint32
			if flags == 2 {
				if mem, err = r.u32(); err != nil {
					return err
				}
			}
			if err := m.check(spaceMemory, mem); err != nil {
				return fmt.Errorf("data segment %d: %w", i, err)
			}
			if err := m.constExpr(r); err != nil {
				return fmt.Errorf("data segment %d: %w", i, err)
			}
		case 1: // passive
		default:
			return fmt.Errorf("data segment %d: unknown flags %d", i, flags)
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		if err := r.skip(int(size)); err != nil || int(size) < 0 {
			return fmt.Errorf("data segment %d: %d bytes run past the section", i, size)
		}
	}
	return nil
}

func (m *moduleInfo) codeSection(r *reader) error {
	m.sawCode = true
	n, err := r.count(maxFunctions, "function bodies")
	if err != nil {
		return err
	}
	if n != m.declared {
		return fmt.Errorf("%d function bodies for the %d functions the function section declares", n, m.declared)
	}
	imported := uint32(len(m.funcs)) - m.declared
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return err
		}
		if size > maxBodySize {
			return fmt.Errorf("function body %d: %d bytes, more than the limit of %d", i, size, maxBodySize)
		}
		if uint64(size) > uint64(len(r.b)-r.pos) {
			return fmt.Errorf("function body %d runs past the code section", i)
		}
		body := &reader{b: r.b[r.pos : r.pos+int(size)]}
		r.pos += int(size)
		if err := m.body(body, m.params[m.funcs[imported+i]]); err != nil {
			return fmt.Errorf("function %d (body %d): %w", imported+i, i, err)
		}
	}
	return nil
}

// body checks one function body: its locals, that its instructions parse
// and end exactly at its end, and every index they name.
func (m *moduleInfo) body(r *reader, params uint32) error {
	groups, err := r.count(maxLocals, "local declarations")
	if err != nil {
		return err
	}
	m.locals = uint64(params)
	for range groups {
		n, err := r.u32()
		if err != nil {
			return err
		}
		if m.locals += uint64(n); m.locals > maxLocals {
			return fmt.Errorf("more than %d locals", maxLocals)
		}
		if err := r.valType(); err != nil {
			return err
		}
	}
	m.depth = 1 // the function's own block
	r.index = m.bodyIndex
	for r.pos < len(r.b) {
		at := r.pos
		op, _ := r.byte()
		switch op {
		case 0x02, 0x03, 0x04, 0x06, 0x1f: // block, loop, if, try, try_table
			m.depth++
		case 0x0b, 0x18: // end, delegate
			m.depth--
		}
		if err := r.skipImmediates(op); err != nil {
			return fmt.Errorf("opcode %#x at byte %d of the body: %w", op, at, err)
		}
		if m.depth == 0 {
			if r.pos != len(r.b) {
				return fmt.Errorf("%d bytes after the function's end", len(r.b)-r.pos)
			}
			return nil
		}
	}
	return errors.New("the body ends inside a block")
}

// inBody checks an index an instruction of the current body names.
func (m *moduleInfo) inBody(s space, i uint32) error {
	switch s {
	case spaceLocal:
		if uint64(i) >= m.locals {
			return fmt.Errorf("local %d is not declared (the function has %d)", i, m.locals)
		}
		return nil
	case spaceLabel:
		if i >= m.depth {
			return fmt.Errorf("branch to label %d at block depth %d", i, m.depth)
		}
		return nil
	}
	return m.check(s, i)
}

// constExpr checks a constant expression (an offset, an initializer):
// instructions up to its end, naming only what is declared so far.
func (m *moduleInfo) constExpr(r *reader) error {
	r.index = m.constIndex
	defer func() { r.index = nil }()
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		if op == 0x0b {
			return nil
		}
		switch op {
		case 0x02, 0x03, 0x04, 0x06, 0x1f, 0x18:
			return fmt.Errorf("opcode %#x in a constant expression", op)
		}
		if err := r.skipImmediates(op); err != nil {
			return fmt.Errorf("opcode %#x in a constant expression: %w", op, err)
		}
	}
}

// check refuses an index into s that the module does not declare.
func (m *moduleInfo) check(s space, i uint32) error {
	var n uint32
	switch s {
	case spaceType:
		n = uint32(len(m.params))
	case spaceFunc:
		n = uint32(len(m.funcs))
	case spaceLocal, spaceLabel:
		return fmt.Errorf("%s %d outside a function body", s, i)
	default:
		n = m.counts[s]
	}
	if i >= n {
		return fmt.Errorf("%s %d is not declared (the module has %d)", s, i, n)
	}
	return nil
}

// nameSection checks the counts of the name section's function and
// local name maps, which wazero decodes (and allocates for) too.
func nameSection(r *reader) error {
	for r.pos < len(r.b) {
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return fmt.Errorf("name section: %w", err)
		}
		if uint64(size) > uint64(len(r.b)-r.pos) {
			return fmt.Errorf("name subsection %d runs past the section", id)
		}
		sub := &reader{b: r.b[r.pos : r.pos+int(size)]}
		r.pos += int(size)
		switch id {
		case 1: // function names
			err = nameMap(sub)
		case 2: // local names: an indirect name map
			var n uint32
			if n, err = sub.count(maxFunctions, "functions with local names"); err == nil {
				for range n {
					if _, err = sub.u32(); err != nil {
						break
					}
					if err = nameMap(sub); err != nil {
						break
					}
				}
			}
		}
		if err != nil {
			return fmt.Errorf("name subsection %d: %w", id, err)
		}
	}
	return nil
}

func nameMap(r *reader) error {
	n, err := r.count(maxFunctions, "names")
	if err != nil {
		return err
	}
	for range n {
		if _, err := r.u32(); err != nil {
			return err
		}
		if _, err := r.name(); err != nil {
			return err
		}
	}
	return nil
}
