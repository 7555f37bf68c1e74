package interrupt

import (
	"bytes"
	"cmp"
	"slices"
)

// Go's linker writes a module's data as one segment per run of bytes
// between runs of eight or more zeros: a Go SDK filter has about 33,000
// segments of 24 bytes on average. wazero keeps each as a struct with its
// own copy of the bytes and of its offset expression (about 100 bytes of
// Go heap a segment, 3 MiB for such a filter), and every instance gets a
// slice header per segment (24 bytes each, 0.8 MiB). The rewrite joins
// active segments that follow one another in memory with at most
// maxDataGap bytes between them, writing the gap's zeros (which the fresh
// memory holds already): the same filter then has about ten segments and
// 0.6 MB more bytes, and its compiled module 2.2 MiB less Go heap.
const maxDataGap = 64

// dataSegment is an active segment of memory 0 at a constant offset.
type dataSegment struct {
	offset uint64
	bytes  []byte
	// owned: bytes is the rewrite's own buffer, which a join appends to,
	// rather than the module's.
	owned bool
}

// joinData returns the data section with its segments joined, or the
// section as it is when it has nothing to join or when joining could
// change what the module does: a data count section (memory.init and
// data.drop name segments by index and need one), a passive segment,
// another memory, an offset that is not an i32.const, or a name section
// that names data segments (their indexes would move). A segment joins
// the one before it (in the section's order) only when it starts at or
// after that one's end and no segment at all writes into the gap between
// them, whose zeros would otherwise overwrite it (Go writes its segments
// in two ascending runs, the second inside the first's range).
func joinData(content []byte, info *moduleInfo, module []byte) []byte {
	if info.dataCount >= 0 || namesDataSegments(module) {
		return content
	}
	segs := readDataSegments(content)
	if len(segs) < 2 {
		return content
	}
	// Every segment's range, by start, with the furthest end so far:
	// whether any segment writes into a gap is two binary searches.
	byStart := make([]dataSegment, 0, len(segs))
	for _, s := range segs {
		if len(s.bytes) > 0 {
			byStart = append(byStart, s)
		}
	}
	slices.SortFunc(byStart, func(a, b dataSegment) int { return cmp.Compare(a.offset, b.offset) })
	maxEnd := make([]uint64, len(byStart))
	for i, s := range byStart {
		maxEnd[i] = s.end()
		if i > 0 {
			maxEnd[i] = max(maxEnd[i], maxEnd[i-1])
		}
	}
	written := func(from, to uint64) bool {
		i, _ := slices.BinarySearchFunc(byStart, from, func(s dataSegment, v uint64) int { return cmp.Compare(s.offset, v) })
		return (i < len(byStart) && byStart[i].offset < to) || (i > 0 && maxEnd[i-1] > from)
	}
	runs := segs[:1]
	for _, seg := range segs[1:] {
		last := &runs[len(runs)-1]
		end := last.end()
		if seg.offset < end || seg.offset-end > maxDataGap || (seg.offset > end && written(end, seg.offset)) {
			runs = append(runs, seg)
			continue
		}
		if !last.owned {
			last.bytes, last.owned = append([]byte(nil), last.bytes...), true
		}
		last.bytes = append(last.bytes, make([]byte, seg.offset-end)...)
		last.bytes = append(last.bytes, seg.bytes...)
	}
	if len(runs) == len(segs) {
		return content
	}
	var out bytes.Buffer
	out.Grow(len(content))
	putU32(&out, uint32(len(runs)))
	for _, s := range runs {
		out.Write([]byte{0x00, 0x41})
		putS32(&out, int32(uint32(s.offset)))
		out.WriteByte(0x0b)
		putU32(&out, uint32(len(s.bytes)))
		out.Write(s.bytes)
	}
	return out.Bytes()
}

func (s dataSegment) end() uint64 { return s.offset + uint64(len(s.bytes)) }

// readDataSegments reads a data section made only of active segments of
// memory 0 at i32.const offsets; nil if it holds anything else.
func readDataSegments(content []byte) []dataSegment {
	r := &reader{b: content}
	n, err := r.u32()
	if err != nil || uint64(n) > uint64(len(content)) {
		return nil
	}
	segs := make([]dataSegment, 0, n)
	for range n {
		flags, err := r.u32()
		if err != nil || flags != 0 {
			return nil
		}
		if op, err := r.byte(); err != nil || op != 0x41 { // i32.const
			return nil
		}
		off, err := r.s32()
		if err != nil {
			return nil
		}
		if end, err := r.byte(); err != nil || end != 0x0b {
			return nil
		}
		size, err := r.u32()
		if err != nil || uint64(size) > uint64(len(r.b)-r.pos) {
			return nil
		}
		segs = append(segs, dataSegment{offset: uint64(uint32(off)), bytes: r.b[r.pos : r.pos+int(size)]})
		r.pos += int(size)
	}
	if r.pos != len(r.b) {
		return nil
	}
	return segs
}

// namesDataSegments reports whether the module's name section has data
// segment names (subsection 9 of the extended name section).
func namesDataSegments(module []byte) bool {
	r := &reader{b: module, pos: 8}
	for r.pos < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return false
		}
		size, err := r.u32()
		if err != nil || uint64(size) > uint64(len(r.b)-r.pos) {
			return false
		}
		sec := &reader{b: r.b[r.pos : r.pos+int(size)]}
		r.pos += int(size)
		if id != secCustom {
			continue
		}
		if name, err := sec.name(); err != nil || name != "name" {
			continue
		}
		for sec.pos < len(sec.b) {
			sub, err := sec.byte()
			if err != nil {
				return false
			}
			if sub == 9 {
				return true
			}
			n, err := sec.u32()
			if err != nil || sec.skip(int(n)) != nil {
				return false
			}
		}
	}
	return false
}
