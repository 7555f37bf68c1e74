package hostabi

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluice-proxy/sluice/hostabi/internal/interrupt"
)

// dataSeg is one data segment for packedModule: active at offset, or
// passive.
type dataSeg struct {
	offset  int
	bytes   []byte
	passive bool
}

// packedModule encodes a module with 4 pages of memory, the segments
// and, with start, a start function that copies the byte at 1 to 0 (what
// it sees of the data).
func packedModule(start, count bool, segs ...dataSeg) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	if start {
		m = append(m, section(1, vec(funcType(nil, nil)))...)
		m = append(m, section(3, vec(leb(0)))...)
	}
	m = append(m, section(5, vec([]byte{0x00, 0x04}))...)
	m = append(m, section(7, vec(append(name("memory"), 0x02, 0x00)))...)
	if start {
		m = append(m, section(8, leb(0))...)
	}
	if count {
		m = append(m, section(12, leb(len(segs)))...)
	}
	if start {
		// i32.const 0; i32.const 1; i32.load8_u; i32.store8
		body := []byte{0x00, 0x41, 0x00, 0x41, 0x01, 0x2d, 0x00, 0x00, 0x3a, 0x00, 0x00, 0x0b}
		m = append(m, section(10, vec(append(leb(len(body)), body...)))...)
	}
	var entries [][]byte
	for _, s := range segs {
		var e []byte
		switch {
		case s.passive:
			e = []byte{0x01}
		default:
			e = append(append([]byte{0x00, 0x41}, sleb(s.offset)...), 0x0b)
		}
		entries = append(entries, append(append(e, leb(len(s.bytes))...), s.bytes...))
	}
	return append(m, section(11, vec(entries...))...)
}

// interpreterWithHost is wazero's interpreter with the host modules, closed
// with the test: data is wazero's store's business, the same for either
// engine, and the interpreter compiles a Go guest fast.
func interpreterWithHost(tb testing.TB) wazero.Runtime {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	tb.Cleanup(func() { rt.Close(ctx) })
	if err := registerWASI(ctx, rt); err != nil {
		tb.Fatal(err)
	}
	if err := registerEnv(ctx, rt); err != nil {
		tb.Fatal(err)
	}
	return rt
}

// TestPackedDataKeepsMemory: an instance of a module whose data the host
// keeps packed starts with the memory wazero would have given it, byte
// for byte, and fails where wazero's instantiation fails; a module where
// writing the data after instantiating could show is left to wazero.
// Fails too when a wazero upgrade moves the fields packData reaches into
// (the Go guest is then not packed).
func TestPackedDataKeepsMemory(t *testing.T) {
	big := func(c byte) []byte { return bytes.Repeat([]byte{c, c + 1, 0, 0}, minPackedData/4) }
	goGuest, err := interrupt.Instrument(testGuests["rawabi"])
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		module []byte
		packed bool
	}{
		"a Go guest, rewritten": {goGuest, true},
		"segments in order":     {packedModule(false, false, dataSeg{offset: 16, bytes: big('a')}, dataSeg{offset: 3 << 16, bytes: []byte("tail")}), true},
		"a later segment overwrites": {packedModule(false, false, dataSeg{offset: 0, bytes: big('a')},
			dataSeg{offset: 100, bytes: []byte("over")}, dataSeg{offset: 5, bytes: nil}), true},
		"past the memory fails": {packedModule(false, false, dataSeg{offset: 0, bytes: big('a')},
			dataSeg{offset: 4<<16 - 2, bytes: []byte("abc")}), true},
		"at the memory's end": {packedModule(false, false, dataSeg{offset: 4<<16 - minPackedData, bytes: big('c')}), true},
		"negative offset fails": {packedModule(false, false, dataSeg{offset: 0, bytes: big('a')},
			dataSeg{offset: -1, bytes: []byte("x")}), true},
		"little data kept":   {packedModule(false, false, dataSeg{offset: 0, bytes: []byte("small")}), false},
		"start section kept": {packedModule(true, false, dataSeg{offset: 0, bytes: big('a')}), false},
		"data count kept":    {packedModule(false, true, dataSeg{offset: 0, bytes: big('a')}), false},
		"passive kept":       {packedModule(false, false, dataSeg{offset: 0, bytes: big('a')}, dataSeg{passive: true, bytes: []byte("p")}), false},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rt := interpreterWithHost(t)
			memory := func(pack bool) ([]byte, *packedData, error) {
				cm, err := rt.CompileModule(ctx, tc.module)
				if err != nil {
					t.Fatal(err)
				}
				defer cm.Close(ctx)
				var p *packedData
				if pack {
					p = packData(cm)
				}
				// As newInstance does: no start functions but the start
				// section, which wazero runs (a rewritten module has none).
				m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
				if err != nil {
					return nil, p, err
				}
				defer m.Close(ctx)
				if p != nil {
					if err := p.write(m.Memory()); err != nil {
						return nil, p, err
					}
				}
				b, _ := m.Memory().Read(0, m.Memory().Size())
				return bytes.Clone(b), p, nil
			}
			want, _, werr := memory(false)
			got, p, gerr := memory(true)
			if (p != nil) != tc.packed {
				t.Fatalf("packed: %v, want %v", p != nil, tc.packed)
			}
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("instantiating with wazero's data: %v; with packed data: %v", werr, gerr)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("memory with packed data differs from wazero's")
			}
			if p != nil {
				total := 0
				for _, s := range p.segs {
					total += int(s.size)
				}
				t.Logf("%d segments, %d bytes packed into %d", len(p.segs), total, len(p.z))
			}
		})
	}
}

// TestPackedDataServes: a Go guest loaded by the engine keeps its data
// packed (no copy left in wazero's module, a third of its size or less
// kept), and its instances start and serve with it.
func TestPackedDataServes(t *testing.T) {
	p := load(t, "rawabi", PluginConfig{})
	cm := p.vm.cm
	if cm.data == nil {
		t.Fatal("the Go guest's data is not packed")
	}
	if n := reflect.ValueOf(cm.mod).Elem().FieldByName("module").Elem().FieldByName("DataSection").Len(); n != 0 {
		t.Fatalf("wazero's module still has %d data segments", n)
	}
	total := 0
	for _, s := range cm.data.segs {
		total += int(s.size)
	}
	if len(cm.data.z)*3 > total {
		t.Errorf("%d data bytes packed into %d: less than three to one", total, len(cm.data.z))
	}
	if err := oneRequest(p, newTestStream()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPackedData: what keeping a Go guest's data packed costs, at
// load (pack) and per new instance (write).
func BenchmarkPackedData(b *testing.B) {
	ctx := context.Background()
	guest, err := interrupt.Instrument(testGuests["rawabi"])
	if err != nil {
		b.Fatal(err)
	}
	rt := interpreterWithHost(b)
	var p *packedData
	b.Run("pack", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			cm, err := rt.CompileModule(ctx, guest)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if p = packData(cm); p == nil {
				b.Fatal("not packed")
			}
			b.StopTimer()
			_ = cm.Close(ctx)
			b.StartTimer()
		}
	})
	cm, err := rt.CompileModule(ctx, guest)
	if err != nil {
		b.Fatal(err)
	}
	m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			if err := p.write(m.Memory()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
