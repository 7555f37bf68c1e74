package hostabi

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"reflect"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// packedData is a compiled module's data segments, taken out of wazero and
// kept compressed; every instance gets them written into its memory by
// write before any of its code runs.
//
// wazero keeps each segment's bytes for the module's lifetime, to copy
// them into every new instance. For a Go-built filter that is its whole
// data (runtime tables, type data, function tables: 0.9-1.3 MB for a
// small filter) on the Go heap beside the same bytes in the instance's
// linear memory. They compress four to five times, and instances are
// made rarely (at load, when the pool grows, after a failure), so the
// host keeps them compressed and pays a few milliseconds per instance.
type packedData struct {
	segs []packedSegment
	// z is every segment's bytes, in segs' order, as one flate stream.
	z []byte
}

type packedSegment struct{ offset, size uint32 }

// minPackedData is the least total of data bytes worth packing: below
// it the saving is smaller than the compressor's state.
const minPackedData = 64 << 10

// packData takes a compiled module's data segments out of it and returns
// them packed, or nil (and the module unchanged) when it would not be
// the same module: the segments are written after wazero has instantiated
// the module, so it must have no start section (wazero runs it while
// instantiating; the deadline rewrite exports it for the host to call
// instead), and every segment must be active, in its own memory, at a
// constant offset, with no data count section (memory.init and data.drop
// name segments by index). Also nil for a module with little data, or if
// wazero's fields are not where this expects (wazero v1.12:
// compiledModule.module.DataSection; TestPackedDataKeepsMemory fails on
// an upgrade that moves them).
func packData(cm wazero.CompiledModule) *packedData {
	m, ok := wazeroModule(cm)
	if !ok {
		return nil
	}
	data, start, count, mem := m.FieldByName("DataSection"), m.FieldByName("StartSection"),
		m.FieldByName("DataCountSection"), m.FieldByName("MemorySection")
	if !data.IsValid() || data.Kind() != reflect.Slice || !start.IsValid() || start.Kind() != reflect.Pointer ||
		!count.IsValid() || count.Kind() != reflect.Pointer || !mem.IsValid() || mem.Kind() != reflect.Pointer {
		return nil
	}
	if !start.IsNil() || !count.IsNil() || mem.IsNil() || data.Len() == 0 {
		return nil
	}
	p := &packedData{segs: make([]packedSegment, 0, data.Len())}
	total := 0
	for i := range data.Len() {
		s := data.Index(i)
		passive, init, expr := s.FieldByName("Passive"), s.FieldByName("Init"), s.FieldByName("OffsetExpression")
		if !passive.IsValid() || passive.Kind() != reflect.Bool || passive.Bool() ||
			!init.IsValid() || init.Kind() != reflect.Slice || !expr.IsValid() || expr.Kind() != reflect.Struct {
			return nil
		}
		code := expr.FieldByName("Data")
		if !code.IsValid() || code.Kind() != reflect.Slice {
			return nil
		}
		offset, ok := i32Const(code.Bytes())
		if !ok {
			return nil
		}
		p.segs = append(p.segs, packedSegment{offset: offset, size: uint32(init.Len())})
		total += init.Len()
	}
	if total < minPackedData {
		return nil
	}
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestSpeed)
	for i := range data.Len() {
		if _, err := w.Write(data.Index(i).FieldByName("Init").Bytes()); err != nil {
			return nil
		}
	}
	if w.Close() != nil {
		return nil
	}
	p.z = bytes.Clone(z.Bytes())
	data = reflect.NewAt(data.Type(), unsafe.Pointer(data.UnsafeAddr())).Elem()
	data.SetZero()
	return p
}

// i32Const reads a constant expression that is one i32.const, as wazero
// evaluates it for a data segment's offset (the value as unsigned).
func i32Const(code []byte) (uint32, bool) {
	if len(code) < 3 || code[0] != 0x41 || code[len(code)-1] != 0x0b {
		return 0, false
	}
	var v int64
	var shift uint
	for i, b := range code[1 : len(code)-1] {
		if i >= 5 {
			return 0, false
		}
		v |= int64(b&0x7f) << shift
		shift += 7
		if b < 0x80 {
			if i != len(code)-3 {
				return 0, false
			}
			if shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			return uint32(int32(v)), true
		}
	}
	return 0, false
}

// write puts the segments into a new instance's memory, in the module's
// order, failing as wazero does when one does not fit.
func (p *packedData) write(mem api.Memory) error {
	for i, s := range p.segs {
		if uint64(s.offset)+uint64(s.size) > uint64(mem.Size()) {
			return fmt.Errorf("data[%d]: out of bounds memory access", i)
		}
	}
	r := flate.NewReader(bytes.NewReader(p.z))
	defer r.Close()
	for i, s := range p.segs {
		if s.size == 0 {
			continue
		}
		dst, ok := mem.Read(s.offset, s.size)
		if !ok {
			return fmt.Errorf("data[%d]: out of bounds memory access", i)
		}
		if _, err := io.ReadFull(r, dst); err != nil {
			return fmt.Errorf("data[%d]: unpacking: %w", i, err)
		}
	}
	return nil
}
