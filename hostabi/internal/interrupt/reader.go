package interrupt

import (
	"errors"
	"fmt"
)

var errTruncated = errors.New("truncated")

// reader decodes the parts of the binary format the rewriter must step
// over; it only needs to know where each instruction ends.
type reader struct {
	b   []byte
	pos int
}

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 too long for u32")
}

// skipLEB steps over a signed or unsigned LEB128 of at most 64 bits.
func (r *reader) skipLEB() error {
	for range 10 {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("LEB128 too long")
}

func (r *reader) skip(n int) error {
	if r.pos+n > len(r.b) {
		return errTruncated
	}
	r.pos += n
	return nil
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	if r.pos+int(n) > len(r.b) || int(n) < 0 {
		return "", errTruncated
	}
	s := string(r.b[r.pos : r.pos+int(n)])
	r.pos += int(n)
	return s, nil
}

func (r *reader) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if err := r.skipLEB(); err != nil {
		return err
	}
	if flags&1 != 0 {
		return r.skipLEB()
	}
	return nil
}

// valType steps over a value type: one byte, or a typed reference
// (ref / ref null) with its heap type.
func (r *reader) valType() error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	if c == 0x63 || c == 0x64 {
		return r.skipLEB()
	}
	return nil
}

// blockType steps over a block type: empty (0x40), a value type, or a
// type index as a signed 33-bit LEB.
func (r *reader) blockType() error {
	if r.pos >= len(r.b) {
		return errTruncated
	}
	switch c := r.b[r.pos]; {
	case c == 0x40:
		r.pos++
		return nil
	case c == 0x63 || c == 0x64:
		return r.valType()
	case c >= 0x6a && c <= 0x7f:
		r.pos++
		return nil
	default:
		return r.skipLEB()
	}
}

func (r *reader) memarg() error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	if flags&0x40 != 0 { // multi-memory: a memory index follows
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return r.skipLEB()
}

func (r *reader) u32s(n int) error {
	for range n {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// bare marks the opcodes without immediates: numeric operations
// (0x45-0xc4) and a few control and parametric ones.
var bare = func() (t [256]bool) {
	for op := 0x45; op <= 0xc4; op++ {
		t[op] = true
	}
	for _, op := range []byte{0x00, 0x01, 0x05, 0x0a, 0x0b, 0x0f, 0x19, 0x1a, 0x1b, 0xd1} {
		t[op] = true
	}
	return t
}()

// skipImmediates steps over the immediates of op, whose byte was read.
func (r *reader) skipImmediates(op byte) error {
	if bare[op] {
		return nil
	}
	if op >= 0x28 && op <= 0x3e { // loads and stores
		return r.memarg()
	}
	switch op {
	case 0x02, 0x03, 0x04, 0x06: // block, loop, if, try
		return r.blockType()
	case 0x07, 0x08, 0x09, 0x0c, 0x0d, 0x10, 0x12, 0x18, // catch, throw, rethrow, br, br_if, call, return_call, delegate
		0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, // locals, globals, table.get/set
		0x3f, 0x40, 0xd2: // memory.size/grow, ref.func
		_, err := r.u32()
		return err
	case 0x11, 0x13: // call_indirect, return_call_indirect
		return r.u32s(2)
	case 0x0e: // br_table
		n, err := r.u32()
		if err != nil {
			return err
		}
		return r.u32s(int(n) + 1)
	case 0x1c: // select with types
		n, err := r.u32()
		if err != nil {
			return err
		}
		for range n {
			if err := r.valType(); err != nil {
				return err
			}
		}
		return nil
	case 0x1f: // try_table
		if err := r.blockType(); err != nil {
			return err
		}
		n, err := r.u32()
		if err != nil {
			return err
		}
		for range n {
			kind, err := r.byte()
			if err != nil {
				return err
			}
			if kind <= 1 { // catch and catch_ref name a tag
				if _, err := r.u32(); err != nil {
					return err
				}
			}
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		return nil
	case 0x41, 0x42: // i32.const, i64.const
		return r.skipLEB()
	case 0x43:
		return r.skip(4)
	case 0x44:
		return r.skip(8)
	case 0xd0: // ref.null heap type
		return r.skipLEB()
	case 0xfc:
		return r.skipMisc()
	case 0xfd:
		return r.skipSIMD()
	case 0xfe:
		return r.skipAtomic()
	}
	return fmt.Errorf("unknown opcode")
}

// skipMisc: saturating truncations, bulk memory and table operations.
func (r *reader) skipMisc() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7:
		return nil
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		return r.u32s(2)
	case sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		return r.u32s(1)
	}
	return fmt.Errorf("unknown 0xfc sub-opcode %d", sub)
}

func (r *reader) skipSIMD() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11, sub == 92, sub == 93: // loads and stores
		return r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		return r.skip(16)
	case sub >= 21 && sub <= 34: // lane extract and replace
		return r.skip(1)
	case sub >= 84 && sub <= 91: // lane loads and stores
		if err := r.memarg(); err != nil {
			return err
		}
		return r.skip(1)
	}
	return nil
}

func (r *reader) skipAtomic() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	if sub == 0x03 { // atomic.fence
		return r.skip(1)
	}
	return r.memarg()
}
