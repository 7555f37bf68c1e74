package interrupt

import (
	"errors"
	"fmt"
)

var errTruncated = errors.New("truncated")

// reader decodes the parts of the binary format the rewriter must step
// over and the validator must look at: where each instruction ends, and
// which indexes its immediates name.
type reader struct {
	b   []byte
	pos int
	// index, when set, is shown every index an instruction names (a
	// block type's type index included), so Validate can check it
	// against what the module declares.
	index func(s space, i uint32) error
}

// space is an index space an instruction may name.
type space uint8

const (
	spaceType space = iota
	spaceFunc
	spaceTable
	spaceMemory
	spaceGlobal
	spaceElem
	spaceData
	spaceLocal
	spaceTag
	spaceLabel
	numSpaces
)

var spaceNames = [numSpaces]string{"type", "function", "table", "memory", "global", "element segment", "data segment", "local", "tag", "label"}

func (s space) String() string { return spaceNames[s] }

// idx reads an index into s and shows it to r.index.
func (r *reader) idx(s space) error {
	i, err := r.u32()
	if err != nil || r.index == nil {
		return err
	}
	return r.index(s, i)
}

func (r *reader) idxs(ss ...space) error {
	for _, s := range ss {
		if err := r.idx(s); err != nil {
			return err
		}
	}
	return nil
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
	if n < 0 || n > len(r.b)-r.pos {
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
	if uint64(n) > uint64(len(r.b)-r.pos) {
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
	}
	// A type index: a non-negative s33, so at most 5 bytes, the last
	// with its sign bit clear.
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if c&0x40 != 0 || v > 0xffffffff {
				return errors.New("bad block type")
			}
			if r.index != nil {
				return r.index(spaceType, uint32(v))
			}
			return nil
		}
	}
	return errors.New("LEB128 too long for a block type")
}

// memarg steps over alignment, memory and offset. Without multi-memory's
// flag the memory is 0, which must exist all the same.
func (r *reader) memarg() error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	if flags&0x40 != 0 { // multi-memory: a memory index follows
		if err := r.idx(spaceMemory); err != nil {
			return err
		}
	} else if r.index != nil {
		if err := r.index(spaceMemory, 0); err != nil {
			return err
		}
	}
	return r.skipLEB()
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
	case 0x07, 0x08: // catch, throw
		return r.idx(spaceTag)
	case 0x09, 0x0c, 0x0d, 0x18: // rethrow, br, br_if, delegate
		return r.idx(spaceLabel)
	case 0x10, 0x12, 0xd2: // call, return_call, ref.func
		return r.idx(spaceFunc)
	case 0x20, 0x21, 0x22: // local.get, set, tee
		return r.idx(spaceLocal)
	case 0x23, 0x24: // global.get, set
		return r.idx(spaceGlobal)
	case 0x25, 0x26: // table.get, set
		return r.idx(spaceTable)
	case 0x3f, 0x40: // memory.size, grow
		return r.idx(spaceMemory)
	case 0x11, 0x13: // call_indirect, return_call_indirect
		return r.idxs(spaceType, spaceTable)
	case 0x0e: // br_table
		n, err := r.u32()
		if err != nil {
			return err
		}
		if uint64(n) >= uint64(len(r.b)-r.pos) {
			return errTruncated // each label takes a byte at least
		}
		for range n + 1 {
			if err := r.idx(spaceLabel); err != nil {
				return err
			}
		}
		return nil
	case 0x1c: // select with types
		n, err := r.u32()
		if err != nil {
			return err
		}
		if uint64(n) > uint64(len(r.b)-r.pos) {
			return errTruncated
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
				if err := r.idx(spaceTag); err != nil {
					return err
				}
			}
			if err := r.idx(spaceLabel); err != nil {
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
	switch sub {
	case 0, 1, 2, 3, 4, 5, 6, 7: // saturating truncations
		return nil
	case 8: // memory.init
		return r.idxs(spaceData, spaceMemory)
	case 9: // data.drop
		return r.idx(spaceData)
	case 10: // memory.copy
		return r.idxs(spaceMemory, spaceMemory)
	case 11: // memory.fill
		return r.idx(spaceMemory)
	case 12: // table.init
		return r.idxs(spaceElem, spaceTable)
	case 13: // elem.drop
		return r.idx(spaceElem)
	case 14: // table.copy
		return r.idxs(spaceTable, spaceTable)
	case 15, 16, 17: // table.grow, size, fill
		return r.idx(spaceTable)
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

// s32 reads a signed LEB128 of at most 32 bits (an i32.const's immediate).
func (r *reader) s32() (int32, error) {
	var v int64
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				v |= -1 << (shift + 7)
			}
			return int32(v), nil
		}
	}
	return 0, errors.New("LEB128 too long for s32")
}
