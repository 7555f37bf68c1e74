package wasmdata

import (
	"bytes"
	"testing"
)

// module builds a module with a memory and the given active segments.
func module(segs ...segment) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 5, 3, 1, 0, 1) // memory section: one memory, min 1 page
	data := encodeData(segs)
	b = append(b, 11)
	b = appendU32(b, uint32(len(data)))
	return append(b, data...)
}

func TestMerge(t *testing.T) {
	in := module(
		segment{0x10, []byte("ab")},
		segment{0x14, []byte("cd")},      // 2 zero bytes after "ab": merged
		segment{0x100, []byte("far")},    // 0xea bytes away: kept apart with gap 8
		segment{0x2000, []byte{1, 2, 3}}, // offset needing a two-byte LEB
	)
	out, before, after, err := Merge(in, 8)
	if err != nil {
		t.Fatal(err)
	}
	if before != 4 || after != 3 {
		t.Fatalf("segments %d -> %d, want 4 -> 3", before, after)
	}
	want := module(
		segment{0x10, []byte("ab\x00\x00cd")},
		segment{0x100, []byte("far")},
		segment{0x2000, []byte{1, 2, 3}},
	)
	if !bytes.Equal(out, want) {
		t.Fatalf("merged module\n%x\nwant\n%x", out, want)
	}
	// Merging is idempotent.
	again, _, n, err := Merge(out, 8)
	if err != nil || n != 3 || !bytes.Equal(again, out) {
		t.Fatalf("second merge changed the module: %d segments, %v", n, err)
	}
}

func TestMergeKeepsOverlapsInOrder(t *testing.T) {
	in := module(segment{0x10, []byte("abcd")}, segment{0x12, []byte("XY")})
	out, _, after, err := Merge(in, 128)
	if err != nil {
		t.Fatal(err)
	}
	if after != 2 || !bytes.Equal(out, in) {
		t.Fatalf("overlapping segments were merged (%d segments)", after)
	}
}

func TestMergeRefuses(t *testing.T) {
	passive := []byte("\x00asm\x01\x00\x00\x00")
	passive = append(passive, 11, 4, 1, 1, 1, 'x') // one passive segment
	for name, in := range map[string][]byte{
		"not wasm":        []byte("hello"),
		"no data section": []byte("\x00asm\x01\x00\x00\x00"),
		"passive segment": passive,
		"truncated":       module(segment{0, []byte("abc")})[:20],
	} {
		if _, _, _, err := Merge(in, 8); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
