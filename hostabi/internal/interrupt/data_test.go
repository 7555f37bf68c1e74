package interrupt

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"
)

// dataModule is a module with one page of memory, exported as "memory",
// and the given data section content (nil: none), after a data count
// section of count segments when count >= 0.
func dataModule(data []byte, count int) []byte {
	var b bytes.Buffer
	b.WriteString("\x00asm\x01\x00\x00\x00")
	writeSection(&b, 5, []byte{1, 0x00, 0x01})
	writeSection(&b, 7, []byte{1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0})
	if count >= 0 {
		var c bytes.Buffer
		putU32(&c, uint32(count))
		writeSection(&b, 12, c.Bytes())
	}
	if data != nil {
		writeSection(&b, secData, data)
	}
	return b.Bytes()
}

// seg is one data segment: active in memory 0 at offset, or passive.
type seg struct {
	offset  int32
	bytes   string
	passive bool
}

func dataSection(segs ...seg) []byte {
	var b bytes.Buffer
	putU32(&b, uint32(len(segs)))
	for _, s := range segs {
		if s.passive {
			b.WriteByte(1)
		} else {
			b.Write([]byte{0, 0x41})
			putS32(&b, s.offset)
			b.WriteByte(0x0b)
		}
		putU32(&b, uint32(len(s.bytes)))
		b.WriteString(s.bytes)
	}
	return b.Bytes()
}

// dataSegments is how many segments the module's data section declares.
func dataSegments(t *testing.T, module []byte) uint32 {
	t.Helper()
	r := &reader{b: module, pos: 8}
	for r.pos < len(r.b) {
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			t.Fatal(err)
		}
		if id == secData {
			n, _ := (&reader{b: r.b[r.pos:]}).u32()
			return n
		}
		r.pos += int(size)
	}
	return 0
}

// TestJoinedDataKeepsMemory: the rewrite joins data segments only where
// the instance's memory comes out byte for byte the same (and an
// instantiation that fails still fails), checked by instantiating the
// module as written and as rewritten.
func TestJoinedDataKeepsMemory(t *testing.T) {
	long := string(bytes.Repeat([]byte("go"), 40))
	for name, tc := range map[string]struct {
		data  []byte
		count int // data count section: -1 none
		want  uint32
	}{
		"small gaps joined": {dataSection(seg{offset: 16, bytes: "abc"}, seg{offset: 27, bytes: "def"},
			seg{offset: 27 + 3 + maxDataGap, bytes: long}, seg{offset: 200, bytes: "x"}), -1, 1},
		"touching segments joined": {dataSection(seg{offset: 0, bytes: "ab"}, seg{offset: 2, bytes: "cd"}), -1, 1},
		"a wide gap splits": {dataSection(seg{offset: 0, bytes: "ab"}, seg{offset: 2 + maxDataGap + 1, bytes: "cd"},
			seg{offset: 2 + maxDataGap + 4, bytes: "ef"}), -1, 2},
		// The gap between the last two holds the first segment's
		// bytes: joining would overwrite them with zeros.
		"going down kept": {dataSection(seg{offset: 40, bytes: "keep"}, seg{offset: 10, bytes: "ab"},
			seg{offset: 50, bytes: "cd"}), -1, 3},
		"going down past a clear gap joined": {dataSection(seg{offset: 100, bytes: "x"}, seg{offset: 10, bytes: "ab"},
			seg{offset: 14, bytes: "cd"}), -1, 2},
		"a gap written by a later segment kept": {dataSection(seg{offset: 10, bytes: "ab"}, seg{offset: 20, bytes: "cd"},
			seg{offset: 15, bytes: "later"}), -1, 3},
		"overlap kept":            {dataSection(seg{offset: 0, bytes: "abcd"}, seg{offset: 2, bytes: "XY"}), -1, 2},
		"passive kept":            {dataSection(seg{offset: 0, bytes: "ab"}, seg{passive: true, bytes: "p"}, seg{offset: 3, bytes: "cd"}), -1, 3},
		"data count kept":         {dataSection(seg{offset: 0, bytes: "ab"}, seg{offset: 3, bytes: "cd"}), 2, 2},
		"out of bounds still":     {dataSection(seg{offset: 65530, bytes: "ab"}, seg{offset: 65534, bytes: "cdef"}), -1, 1},
		"negative offset still":   {dataSection(seg{offset: 0, bytes: "ab"}, seg{offset: -1, bytes: "cd"}), -1, 2},
		"a lone segment":          {dataSection(seg{offset: 5, bytes: "ab"}), -1, 1},
		"empty segments joined":   {dataSection(seg{offset: 5, bytes: ""}, seg{offset: 5, bytes: ""}, seg{offset: 9, bytes: "z"}), -1, 1},
		"bounds kept at the edge": {dataSection(seg{offset: 65534, bytes: "a"}, seg{offset: 65535, bytes: "b"}), -1, 1},
	} {
		t.Run(name, func(t *testing.T) {
			orig := dataModule(tc.data, tc.count)
			patched, err := Instrument(orig)
			if err != nil {
				t.Fatal(err)
			}
			if got := dataSegments(t, patched); got != tc.want {
				t.Errorf("%d data segments after the rewrite, want %d", got, tc.want)
			}
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			memory := func(module []byte) ([]byte, error) {
				m, err := rt.InstantiateWithConfig(ctx, module, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					return nil, err
				}
				defer m.Close(ctx)
				b, _ := m.Memory().Read(0, m.Memory().Size())
				return bytes.Clone(b), nil
			}
			want, werr := memory(orig)
			got, gerr := memory(patched)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("instantiating as written: %v; rewritten: %v", werr, gerr)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the rewritten module's memory differs from the module's as written")
			}
		})
	}
}

// TestGoModuleDataJoined: a Go-built filter's tens of thousands of data
// segments become a handful, with the memory they make unchanged (the
// segments applied in order to a blank memory, as instantiation does).
func TestGoModuleDataJoined(t *testing.T) {
	orig, err := os.ReadFile("../../testdata/go/rawabi/rawabi.wasm")
	if err != nil {
		t.Fatal(err)
	}
	patched, err := Instrument(orig)
	if err != nil {
		t.Fatal(err)
	}
	before, after := dataSegments(t, orig), dataSegments(t, patched)
	t.Logf("data segments: %d as written, %d rewritten", before, after)
	if before < 10_000 || after > 100 {
		t.Errorf("data segments: %d as written, %d rewritten; want a Go module's thousands joined into at most 100", before, after)
	}
	if !bytes.Equal(applyData(t, patched), applyData(t, orig)) {
		t.Error("the joined segments write a different memory")
	}
}

// applyData writes a module's active data segments (memory 0, i32.const
// offsets) into a blank memory, in order.
func applyData(t *testing.T, module []byte) []byte {
	t.Helper()
	var mem []byte
	r := &reader{b: module, pos: 8}
	for r.pos < len(r.b) {
		id, _ := r.byte()
		size, _ := r.u32()
		next := r.pos + int(size)
		if id == secData {
			n, _ := r.u32()
			for range n {
				if flags, _ := r.u32(); flags != 0 {
					t.Fatalf("segment flags %d", flags)
				}
				r.pos++ // i32.const
				off, err := r.s32()
				if err != nil {
					t.Fatal(err)
				}
				r.pos++ // end
				l, _ := r.u32()
				end := int(uint32(off)) + int(l)
				if end > len(mem) {
					mem = append(mem, make([]byte, end-len(mem))...)
				}
				copy(mem[uint32(off):], r.b[r.pos:r.pos+int(l)])
				r.pos += int(l)
			}
		}
		r.pos = next
	}
	return bytes.TrimRight(mem, "\x00")
}
