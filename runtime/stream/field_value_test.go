package stream

import (
	"strings"
	"testing"
)

// TestHasCTLMatchesByteByByte: the word-at-a-time check finds exactly
// the bytes the byte-by-byte rule refuses, every byte value at every
// position of values of every length up to five words (short values,
// one four-word block, a block and its tail), and of lengths around two
// and three blocks, around clean text, tabs and obs-text; CTLMask marks
// exactly the control characters (HTAB too) and DEL of a word.
func TestHasCTLMatchesByteByByte(t *testing.T) {
	ref := func(v []byte) bool {
		for _, c := range v {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return true
			}
		}
		return false
	}
	var lengths []int
	for n := 0; n <= 40; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 63, 64, 65, 71, 96, 103)
	for _, fill := range []byte{'a', '\t', 0x80, 0xff, ' ', '~'} {
		for _, n := range lengths {
			v := []byte(strings.Repeat(string(fill), n))
			if got, want := HasCTL(v), ref(v); got != want {
				t.Fatalf("%q: HasCTL %v, want %v", v, got, want)
			}
			for pos := 0; pos < n; pos++ {
				for c := 0; c < 256; c++ {
					v[pos] = byte(c)
					if got, want := HasCTL(v), ref(v); got != want {
						t.Fatalf("%q: HasCTL %v, want %v", v, got, want)
					}
				}
				v[pos] = fill
			}
		}
	}
	for pos := range 8 {
		for c := range 256 {
			w := uint64(0x6161616161616161)&^(0xff<<(8*pos)) | uint64(c)<<(8*pos) // 'a' elsewhere
			want := uint64(0)
			if c < 0x20 || c == 0x7f {
				want = 0x80 << (8 * pos)
			}
			if got := CTLMask(w); got != want {
				t.Fatalf("CTLMask(%#x) = %#x, want %#x", w, got, want)
			}
		}
	}
}
