package hostabi

import (
	"context"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// maxRefusalBytes bounds the reason a refused configuration carries.
const maxRefusalBytes = 1024

func zapLevel(l abi.LogLevel) zapcore.Level {
	switch l {
	case abi.LogTrace, abi.LogDebug:
		return zapcore.DebugLevel
	case abi.LogInfo:
		return zapcore.InfoLevel
	case abi.LogWarn:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}

// guestLog writes one line a guest logged; checked first so a disabled
// level costs no allocation. One call into the guest may write at most
// EngineConfig.MaxLogLinesPerCall lines and MaxLogBytesPerCall bytes (a
// line that crosses the byte limit is cut); the rest is dropped, counted
// and summed up in one line when the call returns. Envoy bounds nothing
// here, and a filter logging in a loop until its deadline wrote tens of
// megabytes for one request.
func (in *instance) guestLog(level zapcore.Level, msg []byte) {
	log := in.vm.log
	if p := in.pluginFor(in.effective); p != nil {
		log = p.log
	}
	if in.capturing && level >= zapcore.ErrorLevel {
		// Kept whatever the log level: it is the reason of a refusal.
		in.refusal = string(msg[:min(len(msg), maxRefusalBytes)])
	}
	if !log.Core().Enabled(level) {
		return
	}
	cfg := &in.vm.e.cfg
	room := cfg.MaxLogBytesPerCall - in.logBytes
	if in.logLines >= cfg.MaxLogLinesPerCall || room <= 0 {
		in.droppedLines++
		in.droppedLog += len(msg)
		return
	}
	if len(msg) > room {
		in.droppedLog += len(msg) - room
		msg = msg[:room]
	}
	in.logLines++
	in.logBytes += len(msg)
	if ce := log.Check(level, string(msg)); ce != nil {
		ce.Write(zap.Uint32("context_id", in.effective))
	}
}

// reportDroppedLog says, once per call, how much of the guest's log was
// dropped, and counts the lines in wasm_log_lines_dropped_total.
func (in *instance) reportDroppedLog(cb callback) {
	log := in.vm.log // names the plugin, or the shared VM
	if p := in.pluginFor(in.effective); p != nil {
		log = p.log
	}
	cfg := &in.vm.e.cfg
	log.Warn("wasm callback logged past its limit; the rest was dropped",
		zap.String("callback", callbackNames[cb]),
		zap.Int("dropped_lines", in.droppedLines), zap.Int("dropped_bytes", in.droppedLog),
		zap.Int("max_lines", cfg.MaxLogLinesPerCall), zap.Int("max_bytes", cfg.MaxLogBytesPerCall))
	in.vm.countDroppedLog(in.droppedLines)
	in.droppedLines, in.droppedLog = 0, 0
}

func hcLog(_ context.Context, in *instance, a []uint64) abi.Status {
	msg, err := in.read(u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	in.guestLog(zapLevel(abi.LogLevel(a[0])), msg)
	return abi.OK
}

// hcGetLogLevel reports the most verbose level the plugin's logger keeps,
// so a guest can skip formatting lines nobody reads.
func hcGetLogLevel(_ context.Context, in *instance, a []uint64) abi.Status {
	core := in.vm.log.Core()
	level := abi.LogCritical
	switch {
	case core.Enabled(zapcore.DebugLevel):
		level = abi.LogDebug
	case core.Enabled(zapcore.InfoLevel):
		level = abi.LogInfo
	case core.Enabled(zapcore.WarnLevel):
		level = abi.LogWarn
	case core.Enabled(zapcore.ErrorLevel):
		level = abi.LogError
	}
	if err := in.putU32(u32(a[0]), uint32(level)); err != nil {
		return abi.InvalidMemoryAccess
	}
	return abi.OK
}

func hcGetCurrentTime(_ context.Context, in *instance, a []uint64) abi.Status {
	if err := in.putU64(u32(a[0]), uint64(time.Now().UnixNano())); err != nil {
		return abi.InvalidMemoryAccess
	}
	return abi.OK
}

// hcSetTickPeriod sets the root context's timer, whichever context asks
// (Envoy keeps one per root context too).
func hcSetTickPeriod(_ context.Context, in *instance, a []uint64) abi.Status {
	in.setTick(in.rootFor(in.effective), time.Duration(u32(a[0]))*time.Millisecond)
	return abi.OK
}

// hcSetEffectiveContext lets a root context callback (an http_call reply,
// a tick) act on a stream it paused.
func hcSetEffectiveContext(_ context.Context, in *instance, a []uint64) abi.Status {
	id := u32(a[0])
	if in.roots[id] == nil {
		if s := in.streams.get(id); s == nil || s.done {
			return abi.BadArgument
		}
	}
	in.effective = id
	return abi.OK
}

// hcDone completes a shutdown the plugin deferred: its root context
// returned false from proxy_on_done, and the host waits for this call
// before proxy_on_delete (which runs once the current callback returns).
// As proxy-wasm-cpp-host (WasmBase::done), the effective context's plugin
// decides, so a stream context of that plugin may call it too; with no
// pending done it answers NotFound.
func hcDone(_ context.Context, in *instance, _ []uint64) abi.Status {
	p := in.pluginFor(in.effective)
	if p == nil {
		return abi.NotFound
	}
	rc := in.roots[in.rootOf[p]]
	if rc == nil || rc.doneWait == nil || rc.doneCalled {
		return abi.NotFound
	}
	rc.doneCalled = true
	close(rc.doneWait)
	return abi.OK
}

// stream is the effective stream, nil in a root context.
func (in *instance) stream() *HTTPStream {
	// Every header hostcall asks; a stream's id is never reused and a
	// stream is done before it leaves the table.
	if s := in.effStream; s != nil && s.id == in.effective && !s.done {
		return s
	}
	s := in.streams.get(in.effective)
	in.effStream = s
	return s
}
