// Package wasmdata merges a WebAssembly module's data segments: active
// segments closer than a few bytes apart become one, the gap filled with the
// zeros memory holds anyway.
//
// Why: Go's linker splits its data at every run of more than eight zero
// bytes, which gave the built-in module 67,801 segments. wazero keeps each
// decoded segment (about 80 bytes of Go heap, once per compiled module) and
// a slice header per segment in every instance (1.6 MB an instance),
// although the segments are only read while an instance starts. Merged with
// the default gap the module has 9 segments and is 0.67 MB larger.
package wasmdata

import (
	"bytes"
	"errors"
	"fmt"
)

// DefaultGap: a segment costs wazero about 100 bytes (decoded, plus a
// slice header per instance), a zero byte in a merged segment one.
const DefaultGap = 128

type segment struct {
	offset uint32
	data   []byte
}

// Merge returns wasm with its active data segments merged where they are at
// most gap bytes apart, and the segment counts before and after. A module
// whose data section it does not understand (passive segments, another
// memory, an offset that is not a constant) is an error.
func Merge(wasm []byte, gap int) (out []byte, before, after int, err error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], []byte("\x00asm\x01\x00\x00\x00")) {
		return nil, 0, 0, errors.New("not a WebAssembly 1.0 module")
	}
	out = append(out, wasm[:8]...)
	r := reader{b: wasm, i: 8}
	found := false
	for r.i < len(r.b) {
		id := r.byte()
		size := int(r.u32())
		if r.err != nil || size > len(r.b)-r.i {
			return nil, 0, 0, errors.New("truncated section")
		}
		body := r.b[r.i : r.i+size]
		r.i += size
		switch id {
		case 11:
			segs, err := decodeData(body)
			if err != nil {
				return nil, 0, 0, fmt.Errorf("data section: %w", err)
			}
			merged := mergeSegments(segs, gap)
			before, after, found = len(segs), len(merged), true
			body = encodeData(merged)
		case 12:
			// The data count section must agree with the new count; it
			// comes before the data section, so it is patched at the end.
			return nil, 0, 0, errors.New("data count section present: not supported")
		}
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if !found {
		return nil, 0, 0, errors.New("no data section")
	}
	return out, before, after, nil
}

func decodeData(b []byte) ([]segment, error) {
	r := reader{b: b}
	n := r.u32()
	segs := make([]segment, 0, n)
	for range n {
		if flags := r.u32(); flags != 0 {
			return nil, fmt.Errorf("segment %d: flags %d (only active segments of memory 0 are merged)", len(segs), flags)
		}
		if op := r.byte(); op != 0x41 { // i32.const
			return nil, fmt.Errorf("segment %d: offset is not an i32.const", len(segs))
		}
		off := r.s32()
		if end := r.byte(); end != 0x0b {
			return nil, fmt.Errorf("segment %d: offset expression longer than one instruction", len(segs))
		}
		size := int(r.u32())
		if r.err != nil || size > len(r.b)-r.i || off < 0 {
			return nil, fmt.Errorf("segment %d: truncated", len(segs))
		}
		segs = append(segs, segment{offset: uint32(off), data: r.b[r.i : r.i+size]})
		r.i += size
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.i != len(r.b) {
		return nil, errors.New("trailing bytes")
	}
	return segs, nil
}

// mergeSegments joins neighbours at most gap bytes apart. Segments out of
// order or overlapping are left as they are: later segments overwrite
// earlier ones, an order merging must not change.
func mergeSegments(segs []segment, gap int) []segment {
	var out []segment
	for _, s := range segs {
		if len(out) > 0 {
			last := &out[len(out)-1]
			end := uint64(last.offset) + uint64(len(last.data))
			if uint64(s.offset) >= end && uint64(s.offset)-end <= uint64(gap) {
				d := make([]byte, 0, int(uint64(s.offset)-uint64(last.offset))+len(s.data))
				d = append(d, last.data...)
				d = append(d, make([]byte, uint64(s.offset)-end)...)
				last.data = append(d, s.data...)
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

func encodeData(segs []segment) []byte {
	b := appendU32(nil, uint32(len(segs)))
	for _, s := range segs {
		b = append(b, 0, 0x41)
		b = appendS32(b, int32(s.offset))
		b = append(b, 0x0b)
		b = appendU32(b, uint32(len(s.data)))
		b = append(b, s.data...)
	}
	return b
}

type reader struct {
	b   []byte
	i   int
	err error
}

func (r *reader) byte() byte {
	if r.i >= len(r.b) {
		r.err = errors.New("unexpected end")
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		v |= uint32(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	r.err = errors.New("LEB128 too long")
	return 0
}

func (r *reader) s32() int32 {
	var v int64
	shift := 0
	for shift < 35 {
		c := r.byte()
		v |= int64(c&0x7f) << shift
		shift += 7
		if c < 0x80 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return int32(v)
		}
	}
	r.err = errors.New("LEB128 too long")
	return 0
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendS32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
