package hostabi

import (
	"context"
	"crypto/rand"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// WASI preview 1 as filters need it: real clocks and randomness, stdout and
// stderr as plugin log lines, and no file system, sockets or environment.
// Everything else is a stub, as in proxy-wasm-cpp-host, because Go, Rust
// and TinyGo runtimes import (and probe) far more than they use.

// sig turns "iIi" into value types: i = i32, I = i64.
func sig(s string) []api.ValueType {
	t := make([]api.ValueType, len(s))
	for i, c := range s {
		t[i] = api.ValueTypeI32
		if c == 'I' {
			t[i] = api.ValueTypeI64
		}
	}
	return t
}

func errnoFunc(errno uint32) api.GoModuleFunc {
	return func(_ context.Context, _ api.Module, st []uint64) { st[0] = uint64(errno) }
}

var wasiStart = time.Now()

type wasiFunc struct {
	name   string
	params string
	fn     api.GoModuleFunc
}

func wasiFuncs() []wasiFunc {
	nosys := errnoFunc(abi.ErrnoNosys)
	ok := errnoFunc(abi.ErrnoSuccess)
	return []wasiFunc{
		{"args_get", "ii", ok},
		{"args_sizes_get", "ii", zeroSizes},
		{"environ_get", "ii", ok},
		{"environ_sizes_get", "ii", zeroSizes},
		{"clock_res_get", "ii", clockResGet},
		{"clock_time_get", "iIi", clockTimeGet},
		{"fd_advise", "iIIi", nosys},
		{"fd_allocate", "iII", nosys},
		{"fd_close", "i", ok},
		{"fd_datasync", "i", nosys},
		{"fd_fdstat_get", "ii", fdFdstatGet},
		{"fd_fdstat_set_flags", "ii", ok},
		{"fd_fdstat_set_rights", "iII", nosys},
		{"fd_filestat_get", "ii", nosys},
		{"fd_filestat_set_size", "iI", nosys},
		{"fd_filestat_set_times", "iIIi", nosys},
		{"fd_pread", "iiiIi", nosys},
		{"fd_prestat_get", "ii", errnoFunc(abi.ErrnoBadf)},
		{"fd_prestat_dir_name", "iii", nosys},
		{"fd_pwrite", "iiiIi", nosys},
		{"fd_read", "iiii", nosys},
		{"fd_readdir", "iiiIi", nosys},
		{"fd_renumber", "ii", nosys},
		{"fd_seek", "iIii", nosys},
		{"fd_sync", "i", nosys},
		{"fd_tell", "ii", nosys},
		{"fd_write", "iiii", fdWrite},
		{"path_create_directory", "iii", nosys},
		{"path_filestat_get", "iiiii", nosys},
		{"path_filestat_set_times", "iiiiIIi", nosys},
		{"path_link", "iiiiiii", nosys},
		{"path_open", "iiiiiIIii", errnoFunc(abi.ErrnoNotcapable)},
		{"path_readlink", "iiiiii", nosys},
		{"path_remove_directory", "iii", nosys},
		{"path_rename", "iiiiii", nosys},
		{"path_symlink", "iiiii", nosys},
		{"path_unlink_file", "iii", nosys},
		{"poll_oneoff", "iiii", pollOneoff},
		{"proc_raise", "i", nosys},
		{"sched_yield", "", ok},
		{"random_get", "ii", randomGet},
		{"sock_accept", "iii", errnoFunc(abi.ErrnoNotsup)},
		{"sock_recv", "iiiiii", errnoFunc(abi.ErrnoNotsup)},
		{"sock_send", "iiiii", errnoFunc(abi.ErrnoNotsup)},
		{"sock_shutdown", "ii", errnoFunc(abi.ErrnoNotsup)},
	}
}

// registerWASI registers WASI under its name and the older wasi_unstable.
func registerWASI(ctx context.Context, rt wazero.Runtime) error {
	for _, module := range []string{"wasi_snapshot_preview1", "wasi_unstable"} {
		var funcs []hostFunc
		for _, f := range wasiFuncs() {
			names := make([]string, len(f.params))
			for i := range names {
				names[i] = "arg" + string(rune('0'+i))
			}
			funcs = append(funcs, hostFunc{name: f.name, fn: guardAllocator(f.name, f.fn), params: sig(f.params), names: names,
				results: sig("i")})
		}
		funcs = append(funcs, hostFunc{name: "proc_exit", fn: guardAllocator("proc_exit", procExit), params: sig("i"), names: []string{"rval"}})
		if err := instantiateHost(ctx, rt, module, funcs); err != nil {
			return err
		}
	}
	return nil
}

func zeroSizes(_ context.Context, m api.Module, st []uint64) {
	if !m.Memory().WriteUint32Le(u32(st[0]), 0) || !m.Memory().WriteUint32Le(u32(st[1]), 0) {
		st[0] = uint64(abi.ErrnoFault)
		return
	}
	st[0] = uint64(abi.ErrnoSuccess)
}

func clockResGet(_ context.Context, m api.Module, st []uint64) {
	if u32(st[0]) > 3 {
		st[0] = uint64(abi.ErrnoInval)
		return
	}
	if !m.Memory().WriteUint64Le(u32(st[1]), 1) {
		st[0] = uint64(abi.ErrnoFault)
		return
	}
	st[0] = uint64(abi.ErrnoSuccess)
}

// clockTimeGet: REALTIME is the wall clock; the others share a monotonic
// clock (a filter has no business measuring CPU time of the host).
func clockTimeGet(_ context.Context, m api.Module, st []uint64) {
	var t uint64
	switch u32(st[0]) {
	case 0:
		t = uint64(time.Now().UnixNano())
	case 1, 2, 3:
		t = uint64(time.Since(wasiStart).Nanoseconds())
	default:
		st[0] = uint64(abi.ErrnoInval)
		return
	}
	if !m.Memory().WriteUint64Le(u32(st[2]), t) {
		st[0] = uint64(abi.ErrnoFault)
		return
	}
	st[0] = uint64(abi.ErrnoSuccess)
}

// fdFdstatGet describes stdin, stdout and stderr as character devices;
// there are no other descriptors.
func fdFdstatGet(_ context.Context, m api.Module, st []uint64) {
	if u32(st[0]) > 2 {
		st[0] = uint64(abi.ErrnoBadf)
		return
	}
	var b [24]byte
	b[0] = 2 // CHARACTER_DEVICE
	for i := 8; i < 16; i++ {
		b[i] = 0xff
	}
	if !m.Memory().Write(u32(st[1]), b[:]) {
		st[0] = uint64(abi.ErrnoFault)
		return
	}
	st[0] = uint64(abi.ErrnoSuccess)
}

// fdWrite turns writes to stdout (info) and stderr (error) into plugin log
// lines.
func fdWrite(ctx context.Context, m api.Module, st []uint64) {
	fd, iovs, n, nwritten := u32(st[0]), u32(st[1]), u32(st[2]), u32(st[3])
	var level zapcore.Level
	switch fd {
	case 1:
		level = zapcore.InfoLevel
	case 2:
		level = zapcore.ErrorLevel
	default:
		st[0] = uint64(abi.ErrnoBadf)
		return
	}
	mem := m.Memory()
	var sb strings.Builder
	for i := range n {
		off, ok1 := mem.ReadUint32Le(iovs + 8*i)
		l, ok2 := mem.ReadUint32Le(iovs + 8*i + 4)
		b, ok3 := mem.Read(off, l)
		if !ok1 || !ok2 || !ok3 {
			st[0] = uint64(abi.ErrnoFault)
			return
		}
		sb.Write(b)
	}
	if !mem.WriteUint32Le(nwritten, uint32(sb.Len())) {
		st[0] = uint64(abi.ErrnoFault)
		return
	}
	instOf(ctx).stdio[fd-1].write(level, sb.String())
	st[0] = uint64(abi.ErrnoSuccess)
}

// lineWriter turns a guest's writes into whole log lines: runtimes write
// a panic message a few bytes at a time.
type lineWriter struct {
	in      *instance
	pending strings.Builder
}

// maxLogLine flushes a line that never ends.
const maxLogLine = 4096

func (w *lineWriter) write(level zapcore.Level, s string) {
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			w.pending.WriteString(s)
			if w.pending.Len() >= maxLogLine {
				w.flush(level)
			}
			return
		}
		w.pending.WriteString(s[:i])
		w.flush(level)
		s = s[i+1:]
	}
}

func (w *lineWriter) flush(level zapcore.Level) {
	if w.pending.Len() > 0 {
		w.in.guestLog(level, []byte(w.pending.String()))
		w.pending.Reset()
	}
}

// pollOneoff reports no events at once: a filter cannot sleep on the
// host's time, and the Go runtime only needs the call to succeed.
func pollOneoff(_ context.Context, m api.Module, st []uint64) {
	if !m.Memory().WriteUint32Le(u32(st[3]), 0) {
		st[0] = uint64(abi.ErrnoFault)
		return
	}
	st[0] = uint64(abi.ErrnoSuccess)
}

// maxRandom is proxy-wasm-cpp-host's random_get limit.
const maxRandom = 64 << 10

func randomGet(_ context.Context, m api.Module, st []uint64) {
	n := u32(st[1])
	if n > maxRandom {
		st[0] = uint64(abi.ErrnoInval)
		return
	}
	b, ok := m.Memory().Read(u32(st[0]), n)
	if !ok {
		st[0] = uint64(abi.ErrnoFault)
		return
	}
	_, _ = rand.Read(b)
	st[0] = uint64(abi.ErrnoSuccess)
}

// procExit ends the instance, as WASI says; the host sees an exit error
// and replaces it.
func procExit(ctx context.Context, m api.Module, st []uint64) {
	code := u32(st[0])
	_ = m.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}
