// Package interrupt rewrites a Wasm module so the host can stop a running
// call from another goroutine at the price of a few instructions.
//
// wazero stops a call only with WithCloseOnContextDone, which compiles an
// exit to Go at every loop header and spawns a watcher goroutine per call:
// a Go-compiled guest, whose every function starts with a loop, runs a
// callback five times slower with it. Instrument instead adds two mutable
// i32 globals: a budget, counted down at the entry of every function
// (unless the function reaches a loop head before it can branch or call)
// and the head of every loop, and a flag, exported as Export. When the
// budget runs out the guest calls a function the rewrite adds, which
// refills it, traps if the host has raised the flag, and grows its memory
// by zero pages: that exits to Go, where the Go
// runtime can preempt the goroutine, so a guest that spins cannot hold up
// a garbage collection's stop-the-world (nor the timer that raises the
// flag). Any call that does not end must loop or recurse, so it meets a
// check.
package interrupt

import (
	"bytes"
	"fmt"
	"strings"
)

// Export is the name the interrupt flag is exported under.
const Export = "sluice.interrupt"

// BudgetExport is the name the budget is exported under.
const BudgetExport = "sluice.budget"

// RefillExport is the name the function the checks call when the budget
// runs out is exported under, so that a stack trace of a call stopped at
// its deadline names its top frame.
const RefillExport = "sluice.refill"

// StartExport is the name a module's start function is exported under:
// the rewrite drops the start section, which wazero would run while
// instantiating, before the host can arm a deadline (a start function
// that never returns would hold the load for good); the host calls it
// first thing after instantiation instead, under its start-up deadline.
// Data and element segments are in place by then, as the spec's start
// function sees them.
const StartExport = "sluice.start"

// Version names the rewrite's output. A host may keep rewritten modules
// by the original's digest (the rewrite is deterministic); it must not
// reuse one across a change of the rewrite, so any change to what
// Instrument writes comes with a new Version (TestCorpus fails until the
// output digest it records matches).
const Version = "3"

// Section ids of the binary format.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secCode     = 10
	secData     = 11
)

// order is each known section's position: custom sections aside, sections
// come in this order, and the ones we add must keep it.
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// Instrument returns a copy of module with the interrupt flag and its
// checks. DWARF sections are dropped, since code offsets move; the name
// section stays, so stack traces keep function names. Data segments are
// joined where that leaves memory as it was (data.go): Go's thousands of
// small ones cost the host megabytes of heap. An *InvalidError
// means the module fails Validate and must be refused; any other error
// means the module holds something this rewriter does not know, and the
// caller should fall back to wazero's own termination checks.
func Instrument(module []byte) ([]byte, error) {
	c, err := Check(module)
	if err != nil {
		return nil, err
	}
	return InstrumentChecked(module, c)
}

// InstrumentChecked is Instrument for a module Check accepted (c must be
// Check's answer for these very bytes).
func InstrumentChecked(module []byte, c *Checked) ([]byte, error) {
	info := c.info
	r := &reader{b: module, pos: 8}
	out := bytes.NewBuffer(make([]byte, 0, len(module)+len(module)/16))
	out.Write(module[:8])

	var haveGlobal, haveExport bool
	// The two globals go after the module's own: the budget's index, then
	// the flag's. Validate refused any module that names either.
	budget := info.counts[spaceGlobal]
	// The refill function the checks call goes after the module's own
	// functions, with a type after its own types. A module with function
	// bodies has type, function and code sections (Check made sure); one
	// without has no checks and gets no refill function.
	refillType, refill := uint32(len(info.params)), uint32(len(info.funcs))
	withRefill := info.declared > 0
	refillExport := int64(-1)
	if withRefill {
		refillExport = int64(refill)
	}
	localGlobals := budget - info.importedGlobals
	emitGlobal := func() {
		var body bytes.Buffer
		putU32(&body, localGlobals+2)
		body.Write(globalTail)
		writeSection(out, secGlobal, body.Bytes())
		haveGlobal = true
	}
	emitExport := func() {
		body, _ := appendExports([]byte{0}, budget, info.start, refillExport)
		writeSection(out, secExport, body)
		haveExport = true
	}
	// fill adds the global and export sections the module lacks, before a
	// section that must come after them.
	fill := func(id byte) {
		if id == secCustom {
			return
		}
		if !haveGlobal && order[id] > order[secGlobal] {
			emitGlobal()
		}
		if !haveExport && order[id] > order[secExport] {
			emitExport()
		}
	}
	for r.pos < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if uint64(r.pos)+uint64(size) > uint64(len(r.b)) {
			return nil, fmt.Errorf("section %d runs past the end of the module", id)
		}
		content := r.b[r.pos : r.pos+int(size)]
		r.pos += int(size)
		if _, known := order[id]; !known && id != secCustom {
			return nil, fmt.Errorf("unknown section id %d", id)
		}
		fill(id)
		switch id {
		case secCustom:
			name, err := (&reader{b: content}).name()
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(name, ".debug_") {
				continue
			}
			writeSection(out, id, content)
		case secGlobal:
			cr := &reader{b: content}
			if _, err := cr.u32(); err != nil {
				return nil, err
			}
			var body bytes.Buffer
			putU32(&body, localGlobals+2)
			body.Write(content[cr.pos:])
			body.Write(globalTail)
			writeSection(out, id, body.Bytes())
			haveGlobal = true
		case secExport:
			body, err := appendExports(content, budget, info.start, refillExport)
			if err != nil {
				return nil, err
			}
			writeSection(out, id, body)
			haveExport = true
		case secStart:
			// Exported as StartExport instead.
		case secTable:
			body, err := capTables(content)
			if err != nil {
				return nil, err
			}
			writeSection(out, id, body)
		case secType, secFunction:
			if !withRefill {
				writeSection(out, id, content)
				break
			}
			// The refill function's type, () -> (), and its function.
			var entry bytes.Buffer
			if id == secType {
				entry.Write([]byte{0x60, 0x00, 0x00})
			} else {
				putU32(&entry, refillType)
			}
			body, err := appendEntry(content, entry.Bytes())
			if err != nil {
				return nil, err
			}
			writeSection(out, id, body)
		case secCode:
			if !withRefill {
				writeSection(out, id, content)
				break
			}
			body, err := instrumentCode(content, budget, refill)
			if err != nil {
				return nil, err
			}
			writeSection(out, id, body)
		case secData:
			writeSection(out, id, joinData(content, info, module))
		default:
			writeSection(out, id, content)
		}
	}
	if !haveGlobal {
		emitGlobal()
	}
	if !haveExport {
		emitExport()
	}
	return out.Bytes(), nil
}

// MaxTableEntries is the most entries a table of a rewritten module may
// grow to (unless it starts bigger). wazero grows a table without a
// maximum up to 2^32 entries of 8 bytes, on the Go heap and outside the
// instance's memory limit: one table.grow would end the process.
// Instrument gives every table defined in the module a maximum of at most
// this; table.grow past it fails (returns -1) as the spec says it may.
const MaxTableEntries = 1 << 20

// capTables rewrites the table section so that every table has a maximum
// of at most MaxTableEntries (or its minimum, if that is larger).
func capTables(content []byte) ([]byte, error) {
	r := &reader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	putU32(&b, n)
	for range n {
		start := r.pos
		init := r.pos < len(r.b) && r.b[r.pos] == 0x40
		if init {
			r.pos += 2 // 0x40 0x00
		}
		if err := r.valType(); err != nil {
			return nil, err
		}
		b.Write(content[start:r.pos])
		flags, err := r.byte()
		if err != nil {
			return nil, err
		}
		lo, err := r.u32()
		if err != nil {
			return nil, err
		}
		hi := uint32(MaxTableEntries)
		if flags&1 != 0 {
			declared, err := r.u32()
			if err != nil {
				return nil, err
			}
			hi = min(hi, declared)
		}
		b.WriteByte(flags | 1)
		putU32(&b, lo)
		putU32(&b, max(hi, lo))
		if init { // the initializer: instructions up to its end
			from := r.pos
			for {
				op, err := r.byte()
				if err != nil {
					return nil, err
				}
				if op == 0x0b {
					break
				}
				if err := r.skipImmediates(op); err != nil {
					return nil, err
				}
			}
			b.Write(content[from:r.pos])
		}
	}
	return b.Bytes(), nil
}

// Budget is how many checks a guest passes between exits to Go.
const Budget = 10000

// globalTail is the two globals' entries: mutable i32 = Budget, mutable
// i32 = 0.
var globalTail = func() []byte {
	var b bytes.Buffer
	b.Write([]byte{0x7f, 0x01, 0x41})
	putS32(&b, Budget)
	b.Write([]byte{0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b})
	return b.Bytes()
}()

// check is inserted at function entries (see opensWithLoop) and loop
// heads:
//
//	budget = budget - 1
//	if budget == 0 {
//		refill()
//	}
//
// with the rare part in a function of its own (refillBody, exported as
// RefillExport), added once to the module: inlined at every check, the
// exit to Go that memory.grow compiles to made a Go filter's compiled
// code 0.3 MiB larger.
func check(budget, refill uint32) []byte {
	var b bytes.Buffer
	get := func(g uint32) { b.WriteByte(0x23); putU32(&b, g) }
	set := func(g uint32) { b.WriteByte(0x24); putU32(&b, g) }
	get(budget)
	b.Write([]byte{0x41, 0x01, 0x6b}) // i32.const 1, i32.sub
	set(budget)
	get(budget)
	b.Write([]byte{0x45, 0x04, 0x40}) // i32.eqz, if
	b.WriteByte(0x10)                 // call refill
	putU32(&b, refill)
	b.WriteByte(0x0b) // end
	return b.Bytes()
}

// refillBody is the body of the function, () -> (), checks call when
// the budget runs out:
//
//	drop(memory.grow(0))  // an exit to Go: a preemption point
//	budget = Budget
//	if flag { unreachable }
func refillBody(budget uint32) []byte {
	var b bytes.Buffer
	b.WriteByte(0)                                // no locals
	b.Write([]byte{0x41, 0x00, 0x40, 0x00, 0x1a}) // i32.const 0, memory.grow 0, drop
	b.WriteByte(0x41)
	putS32(&b, Budget)
	b.WriteByte(0x24) // global.set budget
	putU32(&b, budget)
	b.WriteByte(0x23) // global.get flag
	putU32(&b, budget+1)
	b.Write([]byte{0x04, 0x40, 0x00, 0x0b}) // if, unreachable, end
	b.WriteByte(0x0b)                       // end
	return b.Bytes()
}

// appendEntry returns a vector section's content with one more entry.
func appendEntry(content, entry []byte) ([]byte, error) {
	r := &reader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	putU32(&b, n+1)
	b.Write(content[r.pos:])
	b.Write(entry)
	return b.Bytes(), nil
}

func writeSection(out *bytes.Buffer, id byte, content []byte) {
	out.WriteByte(id)
	putU32(out, uint32(len(content)))
	out.Write(content)
}

// appendExports adds to an export section the entries the rewrite adds:
// the budget, the flag, for a module with a start section its start
// function, and the refill function the rewrite added, if it did.
// Validate has refused a module that uses their names.
func appendExports(content []byte, budget uint32, start, refill int64) ([]byte, error) {
	r := &reader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	add := func(b *bytes.Buffer, name string, kind byte, idx uint32) {
		putU32(b, uint32(len(name)))
		b.WriteString(name)
		b.WriteByte(kind)
		putU32(b, idx)
	}
	var entries bytes.Buffer
	add(&entries, BudgetExport, 0x03, budget)
	add(&entries, Export, 0x03, budget+1)
	n += 2
	if start >= 0 {
		add(&entries, StartExport, 0x00, uint32(start))
		n++
	}
	if refill >= 0 {
		add(&entries, RefillExport, 0x00, uint32(refill))
		n++
	}
	var b bytes.Buffer
	putU32(&b, n)
	b.Write(content[r.pos:])
	b.Write(entries.Bytes())
	return b.Bytes(), nil
}

func instrumentCode(content []byte, budget, refill uint32) ([]byte, error) {
	r := &reader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	chk := check(budget, refill)
	var out, fn bytes.Buffer
	out.Grow(len(content) + int(n)*len(chk)*2)
	putU32(&out, n+1)
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		if uint64(r.pos)+uint64(size) > uint64(len(r.b)) {
			return nil, fmt.Errorf("function body %d runs past the code section", i)
		}
		fn.Reset()
		if err := instrumentBody(&fn, r.b[r.pos:r.pos+int(size)], chk); err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, err)
		}
		r.pos += int(size)
		putU32(&out, uint32(fn.Len()))
		out.Write(fn.Bytes())
	}
	body := refillBody(budget)
	putU32(&out, uint32(len(body)))
	out.Write(body)
	return out.Bytes(), nil
}

// opensWithLoop tells whether every run of a body reaches a loop head
// before anything that branches, calls, returns or ends a block: only
// variable accesses, constants, arithmetic and block openings come
// first. Go's functions open so (a block around the loop that resumes
// them): the loop head's check then comes right after the entry's, and
// the entry's can go, one check less per call and 0.2 MiB less compiled
// code for a small Go filter.
func opensWithLoop(r *reader) bool {
	for r.pos < len(r.b) {
		op, err := r.byte()
		if err != nil {
			return false
		}
		switch {
		case op == 0x03: // loop
			return true
		case op == 0x02, // block
			op >= 0x20 && op <= 0x24, // local and global get, set, tee
			op >= 0x41 && op <= 0xc4: // constants, comparisons, arithmetic
			if err := r.skipImmediates(op); err != nil {
				return false
			}
		default:
			return false
		}
	}
	return false
}

// instrumentBody copies one function body, adding chk after the locals and
// after each loop's block type.
func instrumentBody(out *bytes.Buffer, body []byte, chk []byte) error {
	r := &reader{b: body}
	groups, err := r.u32()
	if err != nil {
		return err
	}
	for range groups {
		if _, err := r.u32(); err != nil {
			return err
		}
		if err := r.valType(); err != nil {
			return err
		}
	}
	out.Write(body[:r.pos])
	if !opensWithLoop(&reader{b: body, pos: r.pos}) {
		out.Write(chk)
	}
	start := r.pos
	for r.pos < len(r.b) {
		op, err := r.byte()
		if err != nil {
			return err
		}
		if err := r.skipImmediates(op); err != nil {
			return fmt.Errorf("opcode %#x at offset %d: %w", op, r.pos, err)
		}
		if op == 0x03 { // loop
			out.Write(body[start:r.pos])
			out.Write(chk)
			start = r.pos
		}
	}
	out.Write(body[start:])
	return nil
}

func putU32(b *bytes.Buffer, v uint32) {
	for v >= 0x80 {
		b.WriteByte(byte(v) | 0x80)
		v >>= 7
	}
	b.WriteByte(byte(v))
}

func putS32(b *bytes.Buffer, v int32) {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			b.WriteByte(c)
			return
		}
		b.WriteByte(c | 0x80)
	}
}
