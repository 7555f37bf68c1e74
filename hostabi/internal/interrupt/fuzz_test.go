package interrupt

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzInstrument: whatever the bytes, Validate and Instrument return (no
// panic, no allocation beyond a multiple of the input); what Validate
// refuses Instrument refuses as invalid; and a module Instrument rewrites
// compiles in wazero (with the features the host enables) exactly when
// the module as written does, so the rewrite never makes an invalid
// module valid (the sandbox escape) nor breaks a valid one.
func FuzzInstrument(f *testing.F) {
	for _, m := range seedModules() {
		f.Add(m)
	}
	// A real module: a Rust filter (the Go guests, 2-3MB, make each run
	// of the fuzzer take seconds).
	for _, path := range []string{"../../../examples/filters/header-rust/header-rust.wasm"} {
		m, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m)
	}
	ctx := context.Background()
	// The interpreter validates as the compiler does, at a tenth of the
	// cost: wazero validates before it lowers either way. Without debug
	// info wazero skips custom sections' payloads, as the spec does: with
	// it, a custom section with an empty payload fails only when it ends
	// the module (bytes.Reader answers EOF to an empty read at its end),
	// which the rewrite, appending sections, changes (found by this fuzz
	// target; testdata/fuzz/FuzzInstrument/1e2880fb10c20da9).
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithDebugInfoEnabled(false))
	defer rt.Close(ctx)
	compiles := func(b []byte) error {
		m, err := rt.CompileModule(ctx, b)
		if err == nil {
			m.Close(ctx)
		}
		return err
	}
	f.Fuzz(func(t *testing.T, module []byte) {
		verr := Validate(module)
		patched, err := Instrument(module)
		var invalid *InvalidError
		if verr != nil {
			if !errors.As(err, &invalid) {
				t.Fatalf("Validate refused (%v) but Instrument gave %v", verr, err)
			}
			return
		}
		// Valid as far as Validate sees: wazero may decode it (the host
		// compiles it as it is when the rewrite is refused).
		orig := compiles(module)
		if err != nil {
			if errors.As(err, &invalid) {
				t.Fatalf("Validate passed but Instrument says invalid: %v", err)
			}
			return
		}
		got := compiles(patched)
		switch {
		case orig != nil && got == nil:
			t.Fatalf("the module as written does not compile (%v) but its rewrite does", orig)
		case orig == nil && got != nil:
			t.Fatalf("the module compiles but its rewrite does not: %v", got)
		}
	})
}

// seedModules are hand-assembled modules: the rewriter's own test
// modules, ones that name what the rewrite appends, and count bombs.
func seedModules() [][]byte {
	withBody := func(body ...byte) []byte {
		return module(true, [][]byte{{0, 0x0b}, {0, 0x0b}, append([]byte{0}, append(body, 0x20, 0x00, 0x0b)...)})
	}
	cut := spin()
	seeds := [][]byte{
		spin(),
		cut[:len(cut)-4],
		module(false, [][]byte{{0, 0x0b}, {0, 0x0b}, {0, 0x20, 0x00, 0x0b}}),
		withBody(0x41, 0x00, 0x24, 0x00),             // global.set 0: the budget once rewritten
		withBody(0x41, 0x00, 0x24, 0x01),             // global.set 1: the flag
		withBody(0x23, 0x01, 0x1a),                   // global.get 1
		withBody(0x10, 0x07),                         // call 7
		withBody(0x41, 0x00, 0x11, 0x00, 0x00, 0x1a), // call_indirect without a table
		withBody(0x3f, 0x00, 0x1a, 0xfc, 0x09, 0x00), // memory.size; data.drop 0
		{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00,
			0x0a, 0x0a, 0x01, 0x08, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b}, // 2^32-1 locals
	}
	// Export global 0, and a data segment at global.get 0, in a module
	// with no globals.
	exp := spin()
	seeds = append(seeds, append(bytesClone(exp), 0x07, 0x05, 0x01, 0x01, 'g', 0x03, 0x00))
	seeds = append(seeds, append(bytesClone(exp), 0x0b, 0x07, 0x01, 0x00, 0x23, 0x00, 0x0b, 0x01, 'x'))
	// Data segments the rewrite joins, and ones it must not.
	seeds = append(seeds, dataModule(dataSection(seg{offset: 0, bytes: "ab"}, seg{offset: 3, bytes: "cd"}, seg{offset: 1, bytes: "x"}), -1))
	if once, err := Instrument(spin()); err == nil {
		seeds = append(seeds, once) // already rewritten
	}
	return seeds
}

func bytesClone(b []byte) []byte { return append([]byte(nil), b...) }
