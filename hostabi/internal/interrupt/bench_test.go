package interrupt

import (
	"context"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"
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

// BenchmarkValidateRawabi: the structural validation every load runs
// first (Instrument includes it).
func BenchmarkValidateRawabi(b *testing.B) {
	m, err := os.ReadFile("../../testdata/go/rawabi/rawabi.wasm")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		if err := Validate(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWazeroValidateRawabi is what validating the module as written
// with wazero would add to a load instead: its cheapest path is the
// interpreter's compile (decode, validate, lower), and it would come on
// top of the compile of the rewritten module.
func BenchmarkWazeroValidateRawabi(b *testing.B) {
	m, err := os.ReadFile("../../testdata/go/rawabi/rawabi.wasm")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		c, err := rt.CompileModule(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		c.Close(ctx)
	}
}
