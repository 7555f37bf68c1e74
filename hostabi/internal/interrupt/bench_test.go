package interrupt

import (
	"os"
	"testing"
)

// BenchmarkInstrumentRawabi: the rewrite of a 2.9 MB Go guest, paid on
// every load (the compilation cache is keyed by the rewritten bytes).
func BenchmarkInstrumentRawabi(b *testing.B) {
	m, err := os.ReadFile("../../testdata/go/rawabi/rawabi.wasm")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		if _, err := Instrument(m); err != nil {
			b.Fatal(err)
		}
	}
}
