package interrupt

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	for _, root := range []string{filepath.Join(strings.TrimSpace(string(out)), "internal", "integration_test"), "../../../"} {
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
	for _, f := range files {
		orig, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := rt.CompileModule(ctx, orig)
		if err != nil {
			continue // invalid on purpose, or a feature wazero lacks
		}
		_ = m.Close(ctx)
		compiled++
		patched, err := Instrument(orig)
		if err != nil {
			if strings.Contains(err.Error(), "already exports") || strings.Contains(err.Error(), "no memory") {
				refused++ // refused on purpose: the host falls back to wazero's checks
				continue
			}
			t.Errorf("%s: %v", f, err)
			continue
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
}

// spin is a module with an endless loop, a recursion that never ends
// without a loop in it, and a function that adds in a loop, given as
// bytes so the test needs no toolchain.
func spin() []byte {
	return module(true, [][]byte{
		{0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}, // loop br 0 end end
		{0, 0x10, 0x01, 0x10, 0x01, 0x0b},       // call 1; call 1; end: doubling recursion
		{1, 1, 0x7f, // one i32 local: acc
			0x03, 0x40, // loop
			0x20, 0x01, 0x20, 0x00, 0x6a, 0x21, 0x01, // acc += n
			0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, // n = n - 1 (tee)
			0x0d, 0x00, // br_if 0
			0x0b, 0x20, 0x01, 0x0b}, // end; acc; end
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

// TestInterrupt shows the flag stopping a call that would never end,
// while an instrumented function that does end gives the same result.
func TestInterrupt(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	patched, err := Instrument(spin())
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"loop", "recurse"} {
		t.Run(fn, func(t *testing.T) {
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
	if _, err := Instrument(once); err == nil || !strings.Contains(err.Error(), "already exports") {
		t.Errorf("instrumenting twice: got %v", err)
	}
}
