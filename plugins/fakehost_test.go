package plugins

// A minimal proxy-wasm host, for these tests only: enough of the ABI to run
// the built-in module's callbacks and see what they do. It is not sluice's
// host (hostabi); it exists so the module is exercised before and apart
// from it. Everything the host answers comes from the fakeHost of the call's
// context, so instances do not share state.

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/plugins/goref"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

type hostKey struct{}

type sharedEntry struct {
	value []byte
	cas   uint32
}

type localReply struct {
	status  uint32
	headers [][2]string
	body    string
}

type fakeHost struct {
	props    map[string][]byte // path segments joined by NUL
	config   []byte
	maps     [8][][2]string
	bodies   [9][]byte
	local    *localReply
	shared   map[string]sharedEntry
	casSeq   uint32
	logs     []string
	metrics  map[string]uint32
	values   map[uint32]int64
	nowNanos int64
	tickMs   uint32
	resumed  []uint32 // stream types continued
	closed   []uint32 // stream types closed
	calls    []fakeCall
	effCtx   uint32
}

type fakeCall struct {
	cluster string
	headers [][2]string
	body    []byte
	timeout uint32
}

func newFakeHost() *fakeHost {
	return &fakeHost{
		props:    map[string][]byte{},
		shared:   map[string]sharedEntry{},
		metrics:  map[string]uint32{},
		values:   map[uint32]int64{},
		nowNanos: 1_700_000_000_000_000_000,
	}
}

// compiled is the module, compiled once per test binary: compiling a Go
// wasip1 module takes seconds.
var compiled = sync.OnceValues(func() (*runtimeAndModule, error) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, testRuntimeConfig())
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	cm, err := r.CompileModule(ctx, goref.Module())
	if err != nil {
		return nil, fmt.Errorf("compiling builtin.wasm: %w", err)
	}
	if err := instantiateEnv(ctx, r, cm); err != nil {
		return nil, err
	}
	return &runtimeAndModule{r: r, cm: cm}, nil
})

// testRuntimeConfig compiles through a disk cache shared by test runs: a
// compile of the built-in module takes seconds, and about a minute under
// the race detector, which then reuses what a plain run compiled.
func testRuntimeConfig() wazero.RuntimeConfig {
	cfg := wazero.NewRuntimeConfig()
	if cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(os.TempDir(), "sluice-plugins-test-cache")); err == nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	return cfg
}

type runtimeAndModule struct {
	r  wazero.Runtime
	cm wazero.CompiledModule
}

func hostFrom(ctx context.Context) *fakeHost { return ctx.Value(hostKey{}).(*fakeHost) }

func read(m api.Module, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Sprintf("guest memory read out of range: %d+%d", ptr, n))
	}
	return append([]byte(nil), b...)
}

// give copies data into guest memory the way hosts do: through
// proxy_on_memory_allocate, then writes the address and size out.
func give(ctx context.Context, m api.Module, data []byte, retPtr, retSize uint32) {
	res, err := m.ExportedFunction("proxy_on_memory_allocate").Call(ctx, uint64(len(data)))
	if err != nil {
		panic(err)
	}
	addr := uint32(res[0])
	m.Memory().Write(addr, data)
	m.Memory().WriteUint32Le(retPtr, addr)
	m.Memory().WriteUint32Le(retSize, uint32(len(data)))
}

func serialize(pairs [][2]string) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pairs)))
	for _, p := range pairs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p[0])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p[1])))
	}
	for _, p := range pairs {
		b = append(append(append(append(b, p[0]...), 0), p[1]...), 0)
	}
	return b
}

func deserialize(b []byte) [][2]string {
	if len(b) < 4 {
		return nil
	}
	n := int(binary.LittleEndian.Uint32(b))
	off := 4 + 8*n
	var out [][2]string
	for i := 0; i < n; i++ {
		kl := int(binary.LittleEndian.Uint32(b[4+8*i:]))
		vl := int(binary.LittleEndian.Uint32(b[8+8*i:]))
		k := string(b[off : off+kl])
		off += kl + 1
		v := string(b[off : off+vl])
		off += vl + 1
		out = append(out, [2]string{k, v})
	}
	return out
}

func getHeader(h [][2]string, k string) (string, bool) {
	for _, kv := range h {
		if strings.EqualFold(kv[0], k) {
			return kv[1], true
		}
	}
	return "", false
}

func removeHeader(h [][2]string, k string) [][2]string {
	out := h[:0]
	for _, kv := range h {
		if !strings.EqualFold(kv[0], k) {
			out = append(out, kv)
		}
	}
	return out
}

type hostFn func(ctx context.Context, h *fakeHost, m api.Module, p []uint64) uint32

func instantiateEnv(ctx context.Context, r wazero.Runtime, cm wazero.CompiledModule) error {
	fns := map[string]hostFn{
		"proxy_log": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			h.logs = append(h.logs, string(read(m, uint32(p[1]), uint32(p[2]))))
			return 0
		},
		"proxy_get_property": func(ctx context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			v, ok := h.props[string(read(m, uint32(p[0]), uint32(p[1])))]
			if !ok {
				return 1
			}
			give(ctx, m, v, uint32(p[2]), uint32(p[3]))
			return 0
		},
		"proxy_set_property": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			h.props[string(read(m, uint32(p[0]), uint32(p[1])))] = read(m, uint32(p[2]), uint32(p[3]))
			return 0
		},
		"proxy_get_buffer_bytes": func(ctx context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			var b []byte
			switch bt := uint32(p[0]); bt {
			case 7:
				b = h.config
			default:
				b = h.bodies[bt]
			}
			start, max := int(uint32(p[1])), int(uint32(p[2]))
			if start > len(b) {
				return 2
			}
			b = b[start:]
			if max < len(b) {
				b = b[:max]
			}
			if len(b) == 0 {
				return 1
			}
			give(ctx, m, b, uint32(p[3]), uint32(p[4]))
			return 0
		},
		"proxy_set_buffer_bytes": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			bt, start, size := uint32(p[0]), int(uint32(p[1])), int(uint32(p[2]))
			data := read(m, uint32(p[3]), uint32(p[4]))
			old := h.bodies[bt]
			switch {
			case start == 0 && size == 0:
				h.bodies[bt] = append(data, old...)
			case start >= len(old):
				h.bodies[bt] = append(old, data...)
			default:
				h.bodies[bt] = data
			}
			return 0
		},
		"proxy_get_header_map_pairs": func(ctx context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			give(ctx, m, serialize(h.maps[uint32(p[0])]), uint32(p[1]), uint32(p[2]))
			return 0
		},
		"proxy_set_header_map_pairs": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			h.maps[uint32(p[0])] = deserialize(read(m, uint32(p[1]), uint32(p[2])))
			return 0
		},
		"proxy_get_header_map_value": func(ctx context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			v, ok := getHeader(h.maps[uint32(p[0])], string(read(m, uint32(p[1]), uint32(p[2]))))
			if !ok {
				return 1
			}
			give(ctx, m, []byte(v), uint32(p[3]), uint32(p[4]))
			return 0
		},
		"proxy_add_header_map_value": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			k, v := string(read(m, uint32(p[1]), uint32(p[2]))), string(read(m, uint32(p[3]), uint32(p[4])))
			h.maps[uint32(p[0])] = append(h.maps[uint32(p[0])], [2]string{strings.ToLower(k), v})
			return 0
		},
		"proxy_replace_header_map_value": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			k, v := string(read(m, uint32(p[1]), uint32(p[2]))), string(read(m, uint32(p[3]), uint32(p[4])))
			h.maps[uint32(p[0])] = append(removeHeader(h.maps[uint32(p[0])], k), [2]string{strings.ToLower(k), v})
			return 0
		},
		"proxy_remove_header_map_value": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			h.maps[uint32(p[0])] = removeHeader(h.maps[uint32(p[0])], string(read(m, uint32(p[1]), uint32(p[2]))))
			return 0
		},
		"proxy_send_local_response": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			h.local = &localReply{
				status:  uint32(p[0]),
				body:    string(read(m, uint32(p[3]), uint32(p[4]))),
				headers: deserialize(read(m, uint32(p[5]), uint32(p[6]))),
			}
			return 0
		},
		"proxy_continue_stream": func(_ context.Context, h *fakeHost, _ api.Module, p []uint64) uint32 {
			h.resumed = append(h.resumed, uint32(p[0]))
			return 0
		},
		"proxy_close_stream": func(_ context.Context, h *fakeHost, _ api.Module, p []uint64) uint32 {
			h.closed = append(h.closed, uint32(p[0]))
			return 0
		},
		"proxy_set_effective_context": func(_ context.Context, h *fakeHost, _ api.Module, p []uint64) uint32 {
			h.effCtx = uint32(p[0])
			return 0
		},
		"proxy_get_current_time_nanoseconds": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			m.Memory().WriteUint64Le(uint32(p[0]), uint64(h.nowNanos))
			return 0
		},
		"proxy_set_tick_period_milliseconds": func(_ context.Context, h *fakeHost, _ api.Module, p []uint64) uint32 {
			h.tickMs = uint32(p[0])
			return 0
		},
		"proxy_get_shared_data": func(ctx context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			e, ok := h.shared[string(read(m, uint32(p[0]), uint32(p[1])))]
			if !ok {
				return 1
			}
			give(ctx, m, e.value, uint32(p[2]), uint32(p[3]))
			m.Memory().WriteUint32Le(uint32(p[4]), e.cas)
			return 0
		},
		"proxy_set_shared_data": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			k := string(read(m, uint32(p[0]), uint32(p[1])))
			e, ok := h.shared[k]
			if cas := uint32(p[4]); cas != 0 && (!ok || e.cas != cas) {
				return 8
			}
			h.casSeq++
			h.shared[k] = sharedEntry{value: read(m, uint32(p[2]), uint32(p[3])), cas: h.casSeq}
			return 0
		},
		"proxy_define_metric": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			name := string(read(m, uint32(p[1]), uint32(p[2])))
			id, ok := h.metrics[name]
			if !ok {
				id = uint32(len(h.metrics)+1)<<2 | uint32(p[0])
				h.metrics[name] = id
			}
			m.Memory().WriteUint32Le(uint32(p[3]), id)
			return 0
		},
		"proxy_increment_metric": func(_ context.Context, h *fakeHost, _ api.Module, p []uint64) uint32 {
			h.values[uint32(p[0])] += int64(p[1])
			return 0
		},
		"proxy_record_metric": func(_ context.Context, h *fakeHost, _ api.Module, p []uint64) uint32 {
			h.values[uint32(p[0])] = int64(p[1])
			return 0
		},
		"proxy_http_call": func(_ context.Context, h *fakeHost, m api.Module, p []uint64) uint32 {
			h.calls = append(h.calls, fakeCall{
				cluster: string(read(m, uint32(p[0]), uint32(p[1]))),
				headers: deserialize(read(m, uint32(p[2]), uint32(p[3]))),
				body:    read(m, uint32(p[4]), uint32(p[5])),
				timeout: uint32(p[8]),
			})
			m.Memory().WriteUint32Le(uint32(p[9]), uint32(len(h.calls)))
			return 0
		},
	}
	b := r.NewHostModuleBuilder("env")
	for _, def := range cm.ImportedFunctions() {
		mod, name, _ := def.Import()
		if mod != "env" {
			continue
		}
		fn, ok := fns[name]
		if !ok {
			// Hostcalls this fake does not model answer Unimplemented.
			fn = func(context.Context, *fakeHost, api.Module, []uint64) uint32 { return 12 }
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			h := hostFrom(ctx)
			stack[0] = uint64(fn(ctx, h, m, stack))
		}), def.ParamTypes(), def.ResultTypes()).Export(name)
	}
	_, err := b.Instantiate(context.Background())
	return err
}

// guest is one instance of the module with its fake host.
type guest struct {
	t    testing.TB
	h    *fakeHost
	m    api.Module
	ctx  context.Context
	next uint32
}

func newGuest(t testing.TB) *guest {
	t.Helper()
	rm, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	return instantiate(t, rm)
}

// compileOther compiles another module against the fake host, in a runtime
// of its own that is closed with the test.
func compileOther(t testing.TB, wasm []byte) *runtimeAndModule {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, testRuntimeConfig())
	t.Cleanup(func() { r.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	if err := instantiateEnv(ctx, r, cm); err != nil {
		t.Fatal(err)
	}
	return &runtimeAndModule{r: r, cm: cm}
}

func instantiate(t testing.TB, rm *runtimeAndModule) *guest {
	t.Helper()
	h := newFakeHost()
	ctx := context.WithValue(context.Background(), hostKey{}, h)
	m, err := rm.r.InstantiateModule(ctx, rm.cm, wazero.NewModuleConfig().
		WithName("").WithStartFunctions("_initialize").WithSysWalltime().WithSysNanotime())
	if err != nil {
		t.Fatalf("instantiating builtin.wasm: %v", err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return &guest{t: t, h: h, m: m, ctx: ctx, next: 1}
}

func (g *guest) call(name string, args ...uint64) uint64 {
	g.t.Helper()
	f := g.m.ExportedFunction(name)
	if f == nil {
		g.t.Fatalf("module does not export %s", name)
	}
	res, err := f.Call(g.ctx, args...)
	if err != nil {
		g.t.Fatalf("%s%v: %v (logs: %q)", name, args, err, g.h.logs)
	}
	if len(res) == 0 {
		return 0
	}
	return res[0]
}

// startPlugin creates a root context for rootID and configures it; it
// returns the root context id and whether the configuration was accepted.
func (g *guest) startPlugin(rootID, config string) (uint32, bool) {
	g.t.Helper()
	if g.next == 1 {
		if g.call("proxy_on_vm_start", 0, 0) != 1 {
			g.t.Fatal("proxy_on_vm_start returned false")
		}
	}
	id := g.next
	g.next++
	g.h.props["plugin_root_id"] = []byte(rootID)
	g.h.props["plugin_name"] = []byte(rootID)
	g.call("proxy_on_context_create", uint64(id), 0)
	g.h.config = []byte(config)
	return id, g.call("proxy_on_configure", uint64(id), uint64(len(config))) == 1
}

// stream is one HTTP stream's worth of callbacks.
type stream struct {
	g  *guest
	id uint32
}

func (g *guest) newStream(root uint32) *stream {
	id := g.next
	g.next++
	g.h.local = nil
	g.h.maps = [8][][2]string{}
	g.h.bodies = [9][]byte{}
	g.call("proxy_on_context_create", uint64(id), uint64(root))
	return &stream{g: g, id: id}
}

func (s *stream) requestHeaders(h [][2]string, eos bool) uint64 {
	s.g.h.maps[0] = h
	return s.g.call("proxy_on_request_headers", uint64(s.id), uint64(len(h)), b2u(eos))
}

func (s *stream) requestBody(body string, eos bool) uint64 {
	s.g.h.bodies[0] = []byte(body)
	return s.g.call("proxy_on_request_body", uint64(s.id), uint64(len(body)), b2u(eos))
}

func (s *stream) responseHeaders(h [][2]string, eos bool) uint64 {
	s.g.h.maps[2] = h
	return s.g.call("proxy_on_response_headers", uint64(s.id), uint64(len(h)), b2u(eos))
}

func (s *stream) responseBody(body string, eos bool) uint64 {
	s.g.h.bodies[1] = []byte(body)
	return s.g.call("proxy_on_response_body", uint64(s.id), uint64(len(body)), b2u(eos))
}

func (s *stream) end() {
	s.g.call("proxy_on_log", uint64(s.id))
	s.g.call("proxy_on_done", uint64(s.id))
	s.g.call("proxy_on_delete", uint64(s.id))
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
