package interrupt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// allFeatures compiles everything wazero knows, so the corpus below tests
// the rewriter on every instruction wazero accepts.
func allFeatures() wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2 | 1<<20 - 1)
}

// TestCorpus instruments every module of wazero's spec test suites and the
// repository's own guests: each module that compiles must still compile,
// with the flag exported.
func TestCorpus(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	if err != nil {
		t.Fatalf("locating wazero's module: %v", err)
	}
	var files []string
	wazeroRoot := filepath.Join(strings.TrimSpace(string(out)), "internal", "integration_test")
	for _, root := range []string{wazeroRoot, "../../../"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			if strings.HasSuffix(path, ".wasm") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 1000 {
		t.Fatalf("found %d modules; expected wazero's spec suites", len(files))
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, allFeatures())
	defer rt.Close(ctx)
	var compiled, instrumented, refused int
	// outputs digests what Instrument writes for wazero's spec modules, a
	// fixed set for a given wazero version.
	outputs := sha256.New()
	for _, f := range files {
		orig, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := rt.CompileModule(ctx, orig)
		if err != nil {
			continue // invalid on purpose, or a feature wazero lacks
		}
		// ExportParams reads what wazero's definitions say.
		if got, err := ExportParams(orig); err != nil {
			t.Errorf("%s: ExportParams: %v", f, err)
		} else {
			want := map[string]int{}
			for name, d := range m.ExportedFunctions() {
				want[name] = len(d.ParamTypes())
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s: ExportParams %v, wazero's exports %v", f, got, want)
			}
		}
		// Imports reads what wazero's definitions say.
		if funcs, mems, err := Imports(orig); err != nil {
			t.Errorf("%s: Imports: %v", f, err)
		} else {
			var want []FuncImport
			for _, d := range m.ImportedFunctions() {
				module, name, _ := d.Import()
				want = append(want, FuncImport{Module: module, Name: name, Params: d.ParamTypes(), Results: d.ResultTypes()})
			}
			var wantMems []string
			for _, d := range m.ImportedMemories() {
				module, name, _ := d.Import()
				wantMems = append(wantMems, module+"."+name)
			}
			if !slices.EqualFunc(funcs, want, func(a, b FuncImport) bool {
				return a.Module == b.Module && a.Name == b.Name && bytes.Equal(a.Params, b.Params) && bytes.Equal(a.Results, b.Results)
			}) || !slices.Equal(mems, wantMems) {
				t.Errorf("%s: Imports %v %v, wazero's imports %v %v", f, funcs, mems, want, wantMems)
			}
		}
		_ = m.Close(ctx)
		compiled++
		patched, err := Instrument(orig)
		if err != nil {
			if strings.Contains(err.Error(), "no memory") {
				refused++ // refused on purpose: the host falls back to wazero's checks
				continue
			}
			t.Errorf("%s: %v", f, err)
			continue
		}
		if strings.HasPrefix(f, wazeroRoot) {
			outputs.Write(patched)
		}
		m, err = rt.CompileModule(ctx, patched)
		if err != nil {
			t.Errorf("%s: the instrumented module does not compile: %v", f, err)
			continue
		}
		_ = m.Close(ctx)
		instrumented++
	}
	t.Logf("%d modules, %d valid, %d instrumented, %d refused (no memory)", len(files), compiled, instrumented, refused)
	if instrumented < 500 || instrumented+refused < compiled {
		t.Errorf("only %d of %d valid modules instrumented", instrumented, compiled)
	}
	// Rewritten modules are kept by the original's digest and Version:
	// output that changes under the same Version would reuse stale ones.
	if got := hex.EncodeToString(outputs.Sum(nil)); got != versionOutputs[Version] {
		t.Errorf("Instrument's output for wazero's spec modules is %s, recorded for Version %q: %s. "+
			"If the rewrite changed, bump Version; then record the digest in versionOutputs", got, Version, versionOutputs[Version])
	}
}

// versionOutputs is, for each Version, the digest of Instrument's output
// for wazero's spec modules (wazero v1.12.0's).
var versionOutputs = map[string]string{
	"1": "f282395d97f2a9992ed86831c8ba25293b519f83f46dfe20067385b0cc7fff2e",
	// 2: data segments joined (data.go).
	"2": "dab5f47eb167463b139e2c36e5de8f21256e367d652ea96fc95ef7265883f5c8",
	// 3: the refill out of line (one function the checks call); no entry
	// check in a body that opens with a loop.
	"3": "0361c4a112a11f7c5b98d266fcb805aecf08db302acb905854b645b09501dfed",
}

// spin is a module with an endless loop, a recursion that never ends
// without a loop in it, and a function that adds in a loop, given as
// bytes so the test needs no toolchain.
func spin() []byte {
	return module(true, [][]byte{
		{0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}, // loop br 0 end end
		{0, 0x10, 0x01, 0x10, 0x01, 0x0b},       // call 1; call 1; end: doubling recursion
		spinSum,
	})
}

// module is a memory, if asked, and three functions, loop () -> (), recurse () -> () and
// sum (i32) -> i32, with the given bodies.
func module(memory bool, bodies [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x00asm\x01\x00\x00\x00")
	sec := func(id byte, content ...byte) { writeSection(&b, id, content) }
	// types: () -> (), (i32) -> i32
	sec(1, 2, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f)
	sec(3, 3, 0, 0, 1)
	if memory {
		sec(5, 1, 0x00, 0x01)
	}
	var exp bytes.Buffer
	putU32(&exp, 3)
	for i, name := range []string{"loop", "recurse", "sum"} {
		putU32(&exp, uint32(len(name)))
		exp.WriteString(name)
		exp.WriteByte(0)
		putU32(&exp, uint32(i))
	}
	writeSection(&b, 7, exp.Bytes())
	var code bytes.Buffer
	putU32(&code, uint32(len(bodies)))
	for _, body := range bodies {
		putU32(&code, uint32(len(body)))
		code.Write(body)
	}
	writeSection(&b, 10, code.Bytes())
	return b.Bytes()
}

// openingLoops is spin with its two endless functions shaped as Go
// writes its functions, a block around a loop first thing: a doubling
// recursion inside the loop, whose head is its only check, and one that
// recurses in the block, before the loop, so its entry keeps its check.
func openingLoops() []byte {
	return module(true, [][]byte{
		{0, 0x02, 0x40, 0x03, 0x40, 0x10, 0x00, 0x10, 0x00, 0x0b, 0x0b, 0x0b}, // block loop call 0; call 0 end end end
		{0, 0x02, 0x40, 0x10, 0x01, 0x10, 0x01, 0x0b, 0x03, 0x40, 0x0b, 0x0b}, // block call 1; call 1 end loop end end
		spinSum,
	})
}

// spinSum is sum's body: a loop adding n, n-1, ... 1.
var spinSum = []byte{1, 1, 0x7f, // one i32 local: acc
	0x03, 0x40, // loop
	0x20, 0x01, 0x20, 0x00, 0x6a, 0x21, 0x01, // acc += n
	0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, // n = n - 1 (tee)
	0x0d, 0x00, // br_if 0
	0x0b, 0x20, 0x01, 0x0b} // end; acc; end

// TestOpeningLoopTakesTheEntryCheck: a body that reaches a loop head
// before anything that branches or calls has no check at its entry; one
// that may call first keeps it.
func TestOpeningLoopTakesTheEntryCheck(t *testing.T) {
	patched, err := Instrument(openingLoops())
	if err != nil {
		t.Fatal(err)
	}
	// No globals or imports: the budget is global 0, the refill function
	// 3. Checks: function 0's loop head; function 1's entry and loop head;
	// sum's loop head (its body opens with the loop).
	if n := bytes.Count(patched, check(0, 3)); n != 4 {
		t.Errorf("%d checks, want 4", n)
	}
}

// TestInterrupt shows the flag stopping a call that would never end,
// while an instrumented function that does end gives the same result.
func TestInterrupt(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for _, mod := range []struct {
		name   string
		module []byte
	}{{"spin", spin()}, {"opening loops", openingLoops()}} {
		patched, err := Instrument(mod.module)
		if err != nil {
			t.Fatal(err)
		}
		for _, fn := range []string{"loop", "recurse"} {
			t.Run(mod.name+"/"+fn, func(t *testing.T) {
				mod, err := rt.InstantiateWithConfig(ctx, patched, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					t.Fatal(err)
				}
				defer mod.Close(ctx)
				if got := mod.ExportedFunction("sum"); got == nil {
					t.Fatal("sum is not exported")
				} else if r, err := got.Call(ctx, 100); err != nil || r[0] != 5050 {
					t.Fatalf("sum(100) = %v, %v; want 5050", r, err)
				}
				done := make(chan error, 1)
				go func() {
					_, err := mod.ExportedFunction(fn).Call(ctx)
					done <- err
				}()
				select {
				case err := <-done:
					t.Fatalf("%s returned before the interrupt: %v", fn, err)
				case <-time.After(50 * time.Millisecond):
				}
				mod.ExportedGlobal(Export).(api.MutableGlobal).Set(1)
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), "unreachable") {
						t.Fatalf("%s: got %v, want an unreachable trap", fn, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s did not stop within 5s of the interrupt", fn)
				}
			})
		}
	}
}

func TestRefusals(t *testing.T) {
	unknownOp := module(true, [][]byte{{0, 0x0b}, {0, 0x0b}, {0, 0x20, 0x00, 0xff, 0x0b}})
	cut := spin()
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"not wasm":       {[]byte("hello world, not a module"), "not a Wasm"},
		"truncated":      {cut[:len(cut)-4], "claims 42 bytes; only 38 remain"},
		"unknown opcode": {unknownOp, "function 2 (body 2): opcode 0xff at byte 3 of the body: unknown opcode"},
		"no memory":      {module(false, [][]byte{{0, 0x0b}, {0, 0x0b}, {0, 0x20, 0x00, 0x0b}}), "no memory"},
	} {
		if _, err := Instrument(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, tc.want)
		}
	}
	once, err := Instrument(spin())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Instrument(once); err == nil || !strings.Contains(err.Error(), `export "sluice.budget": a name the host reserves`) {
		t.Errorf("instrumenting twice: got %v", err)
	}
}

// TestValidateRefusesUndeclaredIndexes: outside function bodies too, a
// module that names a global, table, function or memory it does not
// declare (as the rewrite's appended globals would be named) is refused
// before any rewrite.
func TestValidateRefusesUndeclaredIndexes(t *testing.T) {
	hdr := []byte("\x00asm\x01\x00\x00\x00")
	types := []byte{0x01, 0x04, 0x01, 0x60, 0x00, 0x00} // () -> ()
	funcs := []byte{0x03, 0x02, 0x01, 0x00}             // one function
	mem := []byte{0x05, 0x03, 0x01, 0x00, 0x01}         // one page
	code := []byte{0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b}  // empty body
	join := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{hdr}, parts...), nil) }
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"export global 0": {join(types, funcs, mem, []byte{0x07, 0x05, 0x01, 0x01, 'g', 0x03, 0x00}, code),
			`export section at byte 23: export "g": global 0 is not declared (the module has 0)`},
		"export function 1": {join(types, funcs, mem, []byte{0x07, 0x05, 0x01, 0x01, 'f', 0x00, 0x01}, code),
			`export "f": function 1 is not declared (the module has 1)`},
		"data at global.get 0": {join(types, funcs, mem, code, []byte{0x0b, 0x07, 0x01, 0x00, 0x23, 0x00, 0x0b, 0x01, 'x'}),
			"data segment 0: opcode 0x23 in a constant expression: global 0 is not declared (the module has 0)"},
		"data in memory 0, none declared": {join(types, funcs, code, []byte{0x0b, 0x07, 0x01, 0x00, 0x41, 0x00, 0x0b, 0x01, 'x'}),
			"data segment 0: memory 0 is not declared (the module has 0)"},
		"element in table 0, none declared": {join(types, funcs, mem, []byte{0x09, 0x07, 0x01, 0x00, 0x41, 0x00, 0x0b, 0x01, 0x00}, code),
			"element segment 0: table 0 is not declared (the module has 0)"},
		"element naming function 5": {join(types, funcs, []byte{0x04, 0x04, 0x01, 0x70, 0x00, 0x01}, mem, []byte{0x09, 0x07, 0x01, 0x00, 0x41, 0x00, 0x0b, 0x01, 0x05}, code),
			"element segment 0: function 5 is not declared (the module has 1)"},
		"global initialised from itself": {join(types, funcs, mem, []byte{0x06, 0x06, 0x01, 0x7f, 0x01, 0x23, 0x00, 0x0b}, code),
			"global 0: opcode 0x23 in a constant expression: global 0 is not declared (the module has 0)"},
		"start at function 3": {join(types, funcs, mem, []byte{0x08, 0x01, 0x03}, code),
			"start section at byte 23: function 3 is not declared (the module has 1)"},
		"bodies for functions not declared": {join(types, mem, code),
			"1 function bodies for the 0 functions the function section declares"},
		"functions without bodies": {join(types, funcs, mem),
			"the function section declares 1 functions but the module has no code section"},
		"sections out of order": {join(types, mem, funcs, code), "function section at byte 19 is repeated or out of order"},
		"a table of 2^27 entries": {join(types, funcs, []byte{0x04, 0x07, 0x01, 0x70, 0x00, 0x80, 0x80, 0x80, 0x40}, mem, code),
			"table minimum 134217728 is over the limit of 10000000"},
	} {
		err := Validate(tc.in)
		var invalid *InvalidError
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an invalid module naming %q", name, err, tc.want)
		}
	}
	if err := Validate(join(types, funcs, mem, []byte{0x07, 0x05, 0x01, 0x01, 'f', 0x00, 0x00}, code)); err != nil {
		t.Errorf("the module with nothing out of range: %v", err)
	}
}

// TestTablesGetAMaximum: wazero grows a table without a maximum up to
// 2^32 entries on the Go heap, outside any memory limit; a rewritten
// module's tables stop at MaxTableEntries, and table.grow past it answers
// -1 instead of allocating.
func TestTablesGetAMaximum(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("\x00asm\x01\x00\x00\x00")
	writeSection(&b, 1, []byte{1, 0x60, 1, 0x7f, 1, 0x7f})      // (i32) -> i32
	writeSection(&b, 3, []byte{1, 0})                           // grow
	writeSection(&b, 4, []byte{1, 0x70, 0x00, 0x00})            // funcref, min 0, no max
	writeSection(&b, 5, []byte{1, 0x00, 0x01})                  // memory
	writeSection(&b, 7, []byte{1, 4, 'g', 'r', 'o', 'w', 0, 0}) // export grow
	// grow(n) = table.grow 0 (ref.null func, n)
	body := []byte{0, 0xd0, 0x70, 0x20, 0x00, 0xfc, 0x0f, 0x00, 0x0b}
	var code bytes.Buffer
	code.WriteByte(1)
	putU32(&code, uint32(len(body)))
	code.Write(body)
	writeSection(&b, 10, code.Bytes())
	patched, err := Instrument(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.InstantiateWithConfig(ctx, patched, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	grow := mod.ExportedFunction("grow")
	for _, tc := range []struct{ n, want uint32 }{
		{1000, 0},                      // the old size
		{MaxTableEntries, 0xffffffff},  // past the maximum: -1
		{0xfffffff0, 0xffffffff},       // what would have ended the process
		{MaxTableEntries - 1000, 1000}, // up to the maximum
	} {
		r, err := grow.Call(ctx, uint64(tc.n))
		if err != nil || uint32(r[0]) != tc.want {
			t.Errorf("table.grow %d = %v, %v; want %d", tc.n, r, err, int32(tc.want))
		}
	}
}
