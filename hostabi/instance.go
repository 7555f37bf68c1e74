package hostabi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
	"github.com/sluice-proxy/sluice/hostabi/internal/interrupt"
)

type instKey struct{}

// instCtx is the context every call into an instance's guest carries
// (instance.ctx): the instance, for the host functions the guest calls,
// and otherwise context.Background's answers (no deadline, never done).
// It is its own type so that instOf finds the instance with one type
// check; wazero hands host functions the context of the call, and
// Value's walk up a chain of contexts (a key comparison per step) cost
// about as much as a small hostcall's own work. Its Value reads nothing
// else of it: wazero asks the context for its own keys on every call.
type instCtx struct{ in *instance }

func (*instCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*instCtx) Done() <-chan struct{}       { return nil }
func (*instCtx) Err() error                  { return nil }

func (c *instCtx) Value(key any) any {
	if _, ok := key.(instKey); ok {
		return c.in
	}
	return nil
}

// instOf finds the instance a host function runs for: every call into a
// guest carries it in its context, directly (trusted and interruptible
// calls) or under a deadline (the others).
func instOf(ctx context.Context) *instance {
	if c, ok := ctx.(*instCtx); ok {
		return c.in
	}
	return ctx.Value(instKey{}).(*instance)
}

// instance is one module instance with its own root context. It serves one
// goroutine at a time: everything below mu is guarded by it.
type instance struct {
	vm *vm
	// cm is the compiled module it runs: the VM's at creation (a VM
	// moves from the interpreter to compiled code, tiered.go).
	cm     *compiledModule
	seq    uint64
	mod    api.Module
	mem    api.Memory
	memory *limitedMemory
	// headerArgs is 2 for ABI 0.1.0 header callbacks (no end_of_stream).
	headerArgs int
	// ctx carries the instance to host functions. For a module without
	// the interrupt flag, calls add their deadline to it, which wazero
	// enforces (WithCloseOnContextDone) by closing the module at its next
	// termination check. A deadline cannot be enforced by closing the module
	// from another goroutine: that frees its memory under the running call.
	ctx *instCtx

	// The deadline of a module rewritten by package interrupt: watch fires
	// at deadline (monoNow ns, 0 while no call runs), raises flag and sets
	// budget to 1, so the guest's next check (at a function entry or loop
	// head) looks at the flag. armed is when watch is set to fire (0:
	// stopped); a call re-arms it only when it would fire too late, and
	// watch disarms itself when it finds no call running (onDeadline).
	flag     api.MutableGlobal
	budget   api.MutableGlobal
	watch    *time.Timer
	deadline atomic.Int64
	armed    atomic.Int64
	tripped  atomic.Bool
	depth    int // nested calls: a hostcall that allocates calls the guest

	// What the current outermost call logged, and what it was not
	// allowed to (log.go).
	logLines, logBytes       int
	droppedLines, droppedLog int

	load atomic.Int32 // streams pinned here
	// retired is set once the VM has moved to better compiled code: the
	// instance takes no new stream and closes when its last one ends.
	retired       atomic.Pointer[retiredGen]
	retiredClosed atomic.Bool
	// retireTimer closes a retired instance whose callouts are past
	// their bound (tiered.go). Guarded by mu.
	retireTimer *time.Timer
	// lastUsed is when the instance's last stream ended, or when it
	// joined the pool (monoNow).
	lastUsed atomic.Int64

	mu        sync.Mutex
	nextID    uint32
	effective uint32
	// roots are the plugins' root contexts, by context id.
	roots  map[uint32]*rootContext
	rootOf map[*Plugin]uint32
	// rootCache finds a plugin's root context for a new stream without
	// rootOf's and roots' look-ups (rootContextOf).
	rootCache [16]rootSlot
	streams   streamTable
	callouts  map[uint32]*callout
	nextCall  uint32
	cur       callData
	pending   []func()
	broken    error
	// sample is a xorshift state: which calls are timed (callT).
	sample uint32
	stack  [8]uint64
	// fns are the exports the instance has called, looked up on first
	// call (fn): wazero gives each looked-up function its own call engine
	// and stack (about 10 KiB), and most callbacks of most filters are
	// never called. Which exist is the module's (cm.calls, has).
	fns [numCallbacks]api.Function
	// allocStack is the guest allocator's call stack (allocateView).
	allocStack [1]uint64
	// pathBuf backs the segments of a property hostcall's path.
	pathBuf [8]string
	// scratch holds a shared data value read out of the store before it
	// is copied into the guest.
	scratch []byte
	// effStream caches stream()'s lookup of the effective context.
	effStream *HTTPStream
	starting  bool
	// restricted: the start-up functions (_initialize, main, _start) are
	// running; only the hostcalls proxy-wasm-cpp-host allows then work.
	restricted bool
	// refusal is the last error line the guest logged while vm_start or
	// configure ran ("" otherwise): the reason a refusal gives.
	capturing bool
	refusal   string
	// allocating: the guest's allocator runs (allocate); it may make only
	// the hostcalls cpp-host allows there (memory.go).
	allocating bool
	stdio      [2]lineWriter
}

// callData is what a callback may read besides its stream: the reply of an
// http_call, a gRPC message, foreign function arguments.
type callData struct {
	httpHeaders  [][2]string
	httpBody     []byte
	httpTrailers [][2]string
	grpcBody     []byte
	foreignArgs  []byte
	statusCode   uint32
	statusMsg    string
}

// rootContext is one plugin's root context in an instance.
type rootContext struct {
	p        *Plugin
	id       uint32
	tickStop chan struct{}
	// skip holds the stream callbacks (bits 1<<callback) the plugin said
	// it leaves at its SDK's no-op defaults (sluice_skip_callbacks): the
	// host answers them Continue without entering the guest.
	skip uint32
	// doneWait is open while the root context's proxy_on_done returned
	// false and the plugin has not called proxy_done yet.
	doneWait   chan struct{}
	doneCalled bool
}

// stopTick stops the root context's timer, if it runs. Callers hold the
// instance's mu.
func (rc *rootContext) stopTick() {
	if rc.tickStop != nil {
		close(rc.tickStop)
		rc.tickStop = nil
	}
}

// callout is an http_call, a gRPC call or a gRPC stream in flight.
type callout struct {
	root      uint32
	grpc      bool
	cancelled bool
	// due is when the callout stops holding a retired instance open
	// (monoNow; tiered.go); 0 for a stream.
	due int64
	// stream is set for proxy_grpc_stream (grpc_stream.go).
	stream *grpcStreamState
}

// newInstance instantiates the module and runs start-up as Envoy does:
// _initialize (then main) or _start, then for each plugin its root
// context, vm_start and configure. Callers hold createMu.
func (v *vm) newInstance(ctx context.Context) (*instance, error) {
	in := &instance{
		vm: v, cm: v.cm, seq: v.nextInst.Add(1),
		memory:   &limitedMemory{limit: v.cfg.MemoryLimit},
		callouts: map[uint32]*callout{},
		roots:    map[uint32]*rootContext{},
		rootOf:   map[*Plugin]uint32{},
		nextID:   1,
		starting: true,
		sample:   rand.Uint32() | 1,
	}
	in.stdio[0].in, in.stdio[1].in = in, in
	in.ctx = &instCtx{in: in}
	ictx := experimental.WithMemoryAllocator(in.ctx, &memoryLimiter{mem: in.memory})
	// Start functions are ours to call: wazero would run _start on
	// instantiation, before the host knows whether it is a reactor.
	mod, err := in.cm.rt.InstantiateModule(ictx, in.cm.mod, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, fmt.Errorf("instantiating: %w", err)
	}
	in.mod, in.mem = mod, mod.Memory()
	in.memory.attachMemory(in.mem)
	if in.cm.interruptible {
		var ok bool
		in.flag, ok = mod.ExportedGlobal(interrupt.Export).(api.MutableGlobal)
		if ok {
			in.budget, ok = mod.ExportedGlobal(interrupt.BudgetExport).(api.MutableGlobal)
		}
		if !ok {
			_ = mod.Close(ctx)
			return nil, errors.New("the instrumented module lost its interrupt flag")
		}
		in.watch = time.AfterFunc(time.Hour, in.onDeadline)
		in.watch.Stop()
	}
	if in.mem == nil {
		in.close(errors.New("no memory"))
		return nil, errors.New("module exports no memory")
	}
	if in.cm.data != nil {
		// What wazero would have copied in while instantiating, before
		// any of the module's code runs.
		if err := in.cm.data.write(in.mem); err != nil {
			in.close(err)
			return nil, fmt.Errorf("instantiating: %w", err)
		}
	}
	in.headerArgs = in.cm.headerArgs
	v.mu.Lock()
	plugins := append([]*Plugin(nil), v.plugins...)
	v.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	err = in.start()
	for _, p := range plugins {
		if err != nil {
			break
		}
		err = in.addRoot(p)
	}
	if err != nil {
		in.closeLocked(err)
		return nil, err
	}
	in.starting = false
	// The idle clock starts now, as the instance joins the pool: stamped
	// when its creation began, an instance whose start-up took longer
	// than IdleTimeout (a Go filter's under load, tens of ms) was idle
	// already when the pool grew by it, and the janitor closed it
	// before any stream could reach it.
	in.lastUsed.Store(monoNow())
	in.memory.releaseZeroPages()
	// Start-up's callbacks are done with until another plugin joins the
	// VM: let their call engines go.
	for _, cb := range [...]callback{cbStartSection, cbInitialize, cbMain, cbStart, cbVMStart, cbConfigure} {
		in.fns[cb] = nil
	}
	return in, nil
}

func (in *instance) start() error {
	t := in.vm.cfg.StartTimeout
	// proxy-wasm-cpp-host (WasmBase::startVm) lets start-up code use only
	// logging and WASI; any other hostcall traps and fails the load.
	in.restricted = true
	defer func() { in.restricted = false }()
	if in.fn(cbStartSection) != nil {
		// The start section's function, as wazero would have run it
		// while instantiating, but under the deadline.
		if _, err := in.callT(t, cbStartSection); err != nil {
			return fmt.Errorf("the start function: %w", err)
		}
	}
	switch {
	case in.has(cbInitialize):
		if _, err := in.callT(t, cbInitialize); err != nil {
			return fmt.Errorf("_initialize: %w", err)
		}
		if in.has(cbMain) {
			if _, err := in.callT(t, cbMain, 0, 0); err != nil {
				return fmt.Errorf("main: %w", err)
			}
		}
	case in.has(cbStart):
		if _, err := in.callT(t, cbStart); err != nil {
			return fmt.Errorf("_start: %w", err)
		}
	}
	if !in.has(cbMemoryAllocate) {
		return errors.New("module exports neither proxy_on_memory_allocate nor malloc")
	}
	return nil
}

// has tells whether the module exports a function for cb.
func (in *instance) has(cb callback) bool { return in.cm.calls[cb] != "" }

// fn returns the export cb calls, nil if the module has none. The first
// call looks it up; later ones read the slot. Callers hold mu, so one
// goroutine at a time fills the slots.
func (in *instance) fn(cb callback) api.Function {
	if f := in.fns[cb]; f != nil {
		return f
	}
	return in.lookUp(cb)
}

func (in *instance) lookUp(cb callback) api.Function {
	name := in.cm.calls[cb]
	if name == "" || in.mod == nil {
		return nil
	}
	f := in.mod.ExportedFunction(name)
	in.fns[cb] = f
	return f
}

// addRoot creates p's root context: context_create, vm_start, configure.
// A refusal removes it again and is not the instance's fault; a trap is.
func (in *instance) addRoot(p *Plugin) error {
	t := in.vm.cfg.StartTimeout
	id := in.nextID
	in.nextID++
	in.roots[id] = &rootContext{p: p, id: id}
	in.rootOf[p] = id
	in.effective = id
	refuse := func(err error) error {
		if in.broken == nil {
			in.removeRoot(p)
		}
		return err
	}
	if _, err := in.callT(t, cbContextCreate, uint64(id), 0); err != nil {
		return refuse(fmt.Errorf("proxy_on_context_create (root): %w", err))
	}
	if in.has(cbVMStart) {
		in.effective = id
		ok, reason, err := in.callCapturing(t, cbVMStart, uint64(id), uint64(len(in.vm.cfg.VMConfig)))
		if err != nil {
			return refuse(fmt.Errorf("proxy_on_vm_start: %w", err))
		}
		if uint32(ok) == 0 {
			return refuse(&RefusedError{Callback: "proxy_on_vm_start", Reason: reason})
		}
	}
	if in.has(cbConfigure) {
		in.effective = id
		ok, reason, err := in.callCapturing(t, cbConfigure, uint64(id), uint64(len(p.cfg.PluginConfig)))
		if err != nil {
			return refuse(fmt.Errorf("proxy_on_configure: %w", err))
		}
		if uint32(ok) == 0 {
			return refuse(&RefusedError{Callback: "proxy_on_configure", Reason: reason})
		}
	}
	return nil
}

// callCapturing runs vm_start or configure and returns, with its result,
// the last error line the guest logged meanwhile: a plugin says why it
// refuses its configuration in its log (Envoy shows that line and then
// "Unable to configure Wasm plugin"), and the refusal should carry it.
func (in *instance) callCapturing(t time.Duration, cb callback, args ...uint64) (uint64, string, error) {
	in.capturing, in.refusal = true, ""
	defer func() { in.capturing, in.refusal = false, "" }()
	r, err := in.callT(t, cb, args...)
	return r, in.refusal, err
}

// RefusedError is a plugin's refusal of its configuration: vm_start or
// configure returned false. Reason is the last error line the plugin
// logged while deciding ("" if none); callers point the user at the
// configuration (vm_config for vm_start, config for configure).
type RefusedError struct {
	Callback string // "proxy_on_vm_start" or "proxy_on_configure"
	Reason   string
}

func (e *RefusedError) Error() string {
	what := "plugin configuration"
	if e.Callback == "proxy_on_vm_start" {
		what = "VM configuration"
	}
	msg := e.Callback + " returned false: the " + what + " was refused"
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// removeRoot deletes p's root context (on_done, on_delete) and what hangs
// off it, without waiting for a proxy_done (a refused start-up).
func (in *instance) removeRoot(p *Plugin) {
	in.beginRemoveRoot(p)
	in.finishRemoveRoot(p)
}

// beginRemoveRoot runs proxy_on_done for p's root context. When the plugin
// answers false it returns a channel that proxy_done closes: until then
// the root context stays and still gets its ticks, call replies and queue
// events, as proxy-wasm-cpp-host keeps it in pending_done_
// (WasmBase::startShutdown). Callers hold mu.
func (in *instance) beginRemoveRoot(p *Plugin) <-chan struct{} {
	id, ok := in.rootOf[p]
	if !ok {
		return nil
	}
	rc := in.roots[id]
	if rc.doneWait != nil {
		return rc.doneWait
	}
	if in.broken != nil || in.mod == nil || !in.has(cbDone) {
		return nil
	}
	in.effective = id
	r, err := in.call(cbDone, uint64(id))
	if err != nil || uint32(r) != 0 {
		return nil
	}
	rc.doneWait = make(chan struct{})
	return rc.doneWait
}

// finishRemoveRoot runs proxy_on_delete (on a healthy instance) and drops
// the root context with its timer, queue subscriptions and callouts.
// Callers hold mu.
func (in *instance) finishRemoveRoot(p *Plugin) {
	id, ok := in.rootOf[p]
	if !ok {
		return
	}
	if in.broken == nil && in.mod != nil {
		in.effective = id
		_, _ = in.call(cbDelete, uint64(id))
	}
	if rc := in.roots[id]; rc != nil {
		rc.stopTick()
	}
	in.vm.e.queues.unsubscribe(in, id)
	for cid, co := range in.callouts {
		if co.root == id {
			co.reset()
			delete(in.callouts, cid)
		}
	}
	delete(in.roots, id)
	delete(in.rootOf, p)
	if sl := &in.rootCache[p.seq%uint64(len(in.rootCache))]; sl.p == p {
		*sl = rootSlot{}
	}
}

// rootSlot is an entry of instance.rootCache.
type rootSlot struct {
	p  *Plugin
	rc *rootContext
}

// rootContextOf is p's root context in the instance, nil if it has none.
// Every stream asks, and the two map look-ups it took (rootOf, then
// roots) cost about as much as the rest of a stream's start; the plugins
// of a VM have distinct seqs, so each usually keeps its slot of
// rootCache. Callers hold mu.
func (in *instance) rootContextOf(p *Plugin) *rootContext {
	sl := &in.rootCache[p.seq%uint64(len(in.rootCache))]
	if sl.p == p {
		return sl.rc
	}
	id, ok := in.rootOf[p]
	if !ok {
		return nil
	}
	rc := in.roots[id]
	*sl = rootSlot{p: p, rc: rc}
	return rc
}

// awaitDone waits for the pending proxy_done calls, at most timeout; the
// root contexts that did not call it are deleted anyway, with a warning.
func awaitDone(log *zap.Logger, waits []<-chan struct{}, timeout time.Duration) {
	if len(waits) == 0 {
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-t.C:
			log.Warn("plugin did not call proxy_done after proxy_on_done returned false; deleting its root context",
				zap.Duration("waited", timeout))
			return
		}
	}
}

// call runs an export under the plugin's callback deadline. A missing
// export returns 0, nil. Callers hold mu.
func (in *instance) call(cb callback, args ...uint64) (uint64, error) {
	return in.callT(in.vm.cfg.CallTimeout, cb, args...)
}

func (in *instance) callT(timeout time.Duration, cb callback, args ...uint64) (uint64, error) {
	if in.broken != nil {
		return 0, in.broken
	}
	f := in.fn(cb)
	if f == nil {
		return 0, nil
	}
	copy(in.stack[:], args)
	var err error
	var timedOut bool
	in.depth++
	if in.depth == 1 {
		in.logLines, in.logBytes = 0, 0
	}
	// The call's duration feeds the plugin's CallSeconds. A clock read
	// costs about as much as a minimal callback's guest code, so a call is
	// timed one time in callSample and counted that many times; start-up
	// calls, which are few, always. An untrusted call reads the clock
	// at its start anyway, for its deadline. Which calls, a xorshift
	// draws: a stream makes the same few calls in turn, and a fixed
	// stride would time the same callback every time.
	weight := uint64(0)
	x := in.sample
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	in.sample = x
	switch {
	case in.starting:
		weight = 1
	case x%callSample == 0:
		weight = callSample
	}
	var start int64
	if weight != 0 || !in.vm.cfg.Trusted {
		start = monoNow()
	}
	switch {
	case in.vm.cfg.Trusted:
		// No termination checks are compiled in: a deadline would do
		// nothing but cost wazero's watcher goroutine.
		err = f.CallWithStack(in.ctx, in.stack[:])
	case in.flag != nil:
		err = in.callWatched(f, start, timeout)
		timedOut = in.tripped.Load()
	default:
		ctx, cancel := context.WithTimeout(in.ctx, timeout)
		err = f.CallWithStack(ctx, in.stack[:])
		timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
	}
	in.depth--
	if in.depth == 0 && in.droppedLines > 0 {
		in.reportDroppedLog(cb)
	}
	in.vm.calls.Add(1)
	if weight != 0 {
		in.vm.callNanos.Add(uint64(monoNow()-start) * weight)
	}
	if err == nil && in.broken != nil {
		// A host function found the instance unusable (e.g. the allocator
		// failed) while the guest went on.
		err = in.broken
	}
	if err != nil {
		in.fail(cb, err, timedOut)
		return 0, in.broken
	}
	return in.stack[0], nil
}

// callWatched runs f under the deadline the interrupt flag enforces. A
// nested call runs under the outer one's deadline.
//
// Arming and stopping a timer around every call cost more than a
// callback into a small guest (two more clock reads and the runtime's
// timer lock), so the timer stays armed across calls: a call re-arms it
// only when it would fire after the call's deadline, and when it fires
// onDeadline re-arms it for the running call's deadline or, between
// calls, lets it stop.
func (in *instance) callWatched(f api.Function, start int64, timeout time.Duration) error {
	outer := in.depth == 1
	if outer {
		d := start + int64(timeout)
		in.deadline.Store(d)
		if a := in.armed.Load(); a == 0 || a > d {
			in.armed.Store(d)
			in.watch.Reset(timeout)
		}
	}
	err := f.CallWithStack(in.ctx, in.stack[:])
	if outer {
		in.deadline.Store(0)
	}
	return err
}

// onDeadline runs on the timer's goroutine. Between calls it disarms the
// timer; a call that started meanwhile either saw it disarmed and armed
// it, or stored its deadline before the second look here, which re-arms
// for it. Before a running call's deadline it waits again. A call that
// ends within the instant between the check and the flag leaves the flag
// up, and the instance's next call traps at once: it is then replaced as
// timed out, which the call just before nearly was.
//
// Setting the budget to 1 makes the guest's next check look at the flag.
// The guest counts the budget down with a read and a write of its own,
// and a write of ours in between is lost; so while the call runs the
// timer comes back every repokeEvery and sets it again (the flag alone
// would still stop the guest, within Budget checks).
func (in *instance) onDeadline() {
	for {
		d := in.deadline.Load()
		if d == 0 {
			in.armed.Store(0)
			if in.deadline.Load() == 0 {
				return
			}
			continue
		}
		left := d - monoNow()
		if left <= 0 {
			in.tripped.Store(true)
			in.flag.Set(1)
			in.budget.Set(1)
			in.armed.Store(monoNow() + int64(repokeEvery))
			in.watch.Reset(repokeEvery)
			return
		}
		in.armed.Store(d)
		in.watch.Reset(time.Duration(left))
		// A call that started meanwhile with an earlier deadline may have
		// read armed before the store above and left the timer alone.
		if cur := in.deadline.Load(); cur == d || cur == 0 || cur > d {
			return
		}
	}
}

// monoNow is a monotonic clock in nanoseconds: one clock read, where
// time.Now takes two.
func monoNow() int64 { return int64(time.Since(monoEpoch)) }

var monoEpoch = time.Now()

// callSample: one call in callSample is timed (callT).
const callSample = 8

// repokeEvery is how often a call past its deadline has its budget set
// to 1 again.
const repokeEvery = 2 * time.Millisecond

// FailureError is what a callback returns when it cost the instance.
type FailureError struct {
	Plugin   string
	Callback string
	// Cause is "timeout", "memory_limit", "exit", "trap" or "host".
	Cause string
	Err   error
}

func (e *FailureError) Error() string {
	return fmt.Sprintf("plugin %q: %s: %s: %v", e.Plugin, e.Callback, e.Cause, e.Err)
}

func (e *FailureError) Unwrap() error { return e.Err }

// fail breaks the instance: it is logged with the Wasm stack trace wazero
// puts in the error, counted, taken out of the pool and closed.
func (in *instance) fail(cb callback, err error, timedOut bool) {
	if in.broken != nil {
		if _, ok := in.broken.(*FailureError); ok {
			in.closeLocked(in.broken)
			return
		}
	}
	cause := "trap"
	var exit *sys.ExitError
	switch {
	case in.memory.refused.Load():
		cause = "memory_limit"
	case timedOut:
		cause = "timeout"
	case errors.As(err, &exit):
		cause = "exit"
	case in.broken != nil:
		cause = "host"
	}
	// What the guest printed before dying (a Go panic) belongs with it.
	in.stdio[0].flush(zapcore.InfoLevel)
	in.stdio[1].flush(zapcore.ErrorLevel)
	name := in.vm.name
	p := in.pluginFor(in.effective)
	if p != nil {
		name = p.cfg.Name
	}
	fe := &FailureError{Plugin: name, Callback: callbackNames[cb], Cause: cause, Err: err}
	in.vm.log.Error("wasm instance failed; it is replaced", append([]zap.Field{zap.String("plugin", name),
		zap.String("callback", callbackNames[cb]), zap.String("cause", cause),
		zap.Uint64("instance", in.seq)}, in.failureFields(p, err)...)...)
	in.vm.recordFailure(cause)
	if !in.starting {
		in.vm.remove(in)
	}
	in.closeLocked(fe)
}

// close takes the instance lock and closes it; safe to repeat. A healthy
// instance's root context is told first (proxy_on_done, proxy_on_delete),
// as Envoy does when it shuts a VM down.
func (in *instance) close(reason error) {
	in.mu.Lock()
	in.closeHeld(reason)
}

// busyOrAwaitingCallout: the instance's lock is held (a callback runs),
// or a root context waits for a callout's answer. The janitor leaves such
// an instance in the pool rather than take it out and put it back (as
// closeIfQuiet must for one whose callout starts meanwhile), where a new
// stream would miss it and the pool grow instead. It never waits for the
// lock, which it tries with the VM's held.
func (in *instance) busyOrAwaitingCallout() bool {
	if !in.mu.TryLock() {
		return true
	}
	wait := in.calloutWaitLocked() > 0
	// Not unlock: nothing was queued here, and queued actions (a stream's
	// Resume) must not run with the VM's lock held.
	in.mu.Unlock()
	return wait
}

// closeIfQuiet closes the instance unless a callout (an http_call or gRPC
// call of a root context) waits for its answer within its bound, as a
// retired instance waits (calloutWaitLocked), and reports whether it
// did. The idle-instance janitor uses it on an instance it took out of
// the pool, which takes no new stream meanwhile.
func (in *instance) closeIfQuiet(reason error) bool {
	in.mu.Lock()
	if in.calloutWaitLocked() > 0 {
		in.unlock()
		return false
	}
	in.closeHeld(reason)
	return true
}

// closeHeld is close with mu held; it unlocks it.
func (in *instance) closeHeld(reason error) {
	var plugins []*Plugin
	var waits []<-chan struct{}
	for _, rc := range in.roots {
		plugins = append(plugins, rc.p)
		if w := in.beginRemoveRoot(rc.p); w != nil {
			waits = append(waits, w)
		}
	}
	if len(waits) > 0 {
		// Let the root contexts run (and call proxy_done) meanwhile.
		in.unlock()
		awaitDone(in.vm.log, waits, in.vm.cfg.DoneTimeout)
		in.mu.Lock()
	}
	for _, p := range plugins {
		in.finishRemoveRoot(p)
	}
	in.closeLocked(reason)
	in.unlock()
}

func (in *instance) closeLocked(reason error) {
	if in.broken == nil {
		in.broken = reason
	}
	in.stdio[0].flush(zapcore.InfoLevel)
	in.stdio[1].flush(zapcore.ErrorLevel)
	for _, rc := range in.roots {
		rc.stopTick()
		if rc.doneWait != nil && !rc.doneCalled {
			// A broken instance will never call proxy_done.
			rc.doneCalled = true
			close(rc.doneWait)
		}
	}
	for id, co := range in.callouts {
		co.reset()
		delete(in.callouts, id)
	}
	if in.watch != nil {
		in.watch.Stop()
	}
	if in.mod != nil {
		in.vm.e.queues.unsubscribe(in, 0)
		_ = in.mod.Close(context.Background())
		in.mod = nil
	}
}

// unlock releases the instance, then runs what callbacks asked of the
// proxy (resume, local reply), so the proxy may re-enter this instance.
func (in *instance) unlock() {
	p := in.pending
	in.pending = nil
	in.mu.Unlock()
	for _, f := range p {
		f()
	}
}

// allocate copies data into guest memory through the guest's allocator,
// from inside a host function (ctx is the host function's).
func (in *instance) allocate(ctx context.Context, data []byte) (uint32, error) {
	ptr, buf, err := in.allocateView(ctx, len(data))
	if err == nil {
		copy(buf, data)
	}
	return ptr, err
}

// allocateView has the guest's allocator reserve size bytes and returns
// them as a view of guest memory for the host to fill in place; the view
// is valid until the guest runs again (its memory may then move).
func (in *instance) allocateView(ctx context.Context, size int) (uint32, []byte, error) {
	if size == 0 {
		return 0, nil, nil
	}
	if uint64(size) > in.memory.limit {
		return 0, nil, fmt.Errorf("allocating %d bytes: over the memory limit", size)
	}
	// The allocator is never re-entered (it may not make hostcalls that
	// allocate), so one stack per instance serves every call, without an
	// allocation.
	st := in.allocStack[:]
	st[0] = uint64(size)
	f := in.fn(cbMemoryAllocate)
	if f == nil {
		return 0, nil, errors.New("the module has no allocator")
	}
	in.allocating = true
	err := f.CallWithStack(ctx, st)
	in.allocating = false
	if err != nil {
		if in.broken == nil {
			in.broken = fmt.Errorf("guest allocator: %w", err)
		}
		return 0, nil, in.broken
	}
	ptr := uint32(st[0])
	buf, err := in.read(ptr, uint32(size))
	if ptr == 0 || err != nil {
		return 0, nil, fmt.Errorf("guest allocator returned %#x for %d bytes", ptr, size)
	}
	return ptr, buf, nil
}

// returnBytes hands data to the guest through its (ptr, size) out
// parameters.
func (in *instance) returnBytes(ctx context.Context, data []byte, ptrOut, sizeOut uint32) abi.Status {
	buf, st := in.returnView(ctx, len(data), ptrOut, sizeOut)
	copy(buf, data)
	return st
}

// returnView allocates size bytes in the guest, points its (ptr, size) out
// parameters at them and returns them for the host to fill before the
// guest runs again.
func (in *instance) returnView(ctx context.Context, size int, ptrOut, sizeOut uint32) ([]byte, abi.Status) {
	// Check the out pointers first: a guest must not make the host
	// allocate on its behalf and then fail to receive it.
	if !in.fits(ptrOut, 4) {
		return nil, abi.InvalidMemoryAccess
	}
	if !in.fits(sizeOut, 4) {
		return nil, abi.InvalidMemoryAccess
	}
	ptr, buf, err := in.allocateView(ctx, size)
	if err != nil {
		return nil, abi.InternalFailure
	}
	_ = in.putU32(ptrOut, ptr)
	_ = in.putU32(sizeOut, uint32(size))
	return buf, abi.OK
}

// setTick (re)starts a root context's timer.
func (in *instance) setTick(root uint32, period time.Duration) {
	rc := in.roots[root]
	if rc == nil {
		return
	}
	rc.stopTick()
	if period <= 0 || in.retired.Load() != nil {
		// A retired instance's root contexts tick no more (tiered.go).
		return
	}
	stop := make(chan struct{})
	rc.tickStop = stop
	go in.ticker(root, period, stop)
}

func (in *instance) ticker(root uint32, period time.Duration, stop chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		in.mu.Lock()
		rc := in.roots[root]
		if rc == nil || rc.tickStop != stop || in.broken != nil {
			in.mu.Unlock()
			return
		}
		in.effective = root
		_, _ = in.call(cbTick, uint64(root))
		in.unlock()
	}
}

// rootFor is the root context of a context: itself, or a stream's plugin's.
func (in *instance) rootFor(id uint32) uint32 {
	if s := in.streamOf(id); s != nil {
		return in.rootOf[s.plugin]
	}
	if in.roots[id] != nil {
		return id
	}
	return 0
}

// pluginFor is the plugin a context belongs to, nil for none.
func (in *instance) pluginFor(id uint32) *Plugin {
	if s := in.streamOf(id); s != nil {
		return s.plugin
	}
	if rc := in.roots[id]; rc != nil {
		return rc.p
	}
	return nil
}

// streamOf is the stream context id, nil for a root context (or none):
// the hostcalls ask mostly about the effective stream, which stream()
// finds without a look-up.
func (in *instance) streamOf(id uint32) *HTTPStream {
	if id == in.effective {
		return in.stream()
	}
	return in.streams.get(id)
}
