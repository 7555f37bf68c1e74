package hostabi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// vmKey says which plugins may share a VM: same vm_id (non-empty), module
// and VM settings.
type vmKey struct {
	sum                                  [32]byte
	vmID, vmConfig                       string
	trusted                              bool
	instances                            int
	memory                               uint64
	callTimeout, startTimeout, idle, bko time.Duration
}

// vm is a compiled module and its pool of instances, shared by the plugins
// of one vm_id; each plugin has a root context in every instance.
type vm struct {
	e       *Engine
	cm      *compiledModule
	key     vmKey
	shared  bool
	name    string // the plugin's name, or the vm_id when shared
	cfg     PluginConfig
	log     *zap.Logger
	sha     string
	version abi.Version
	// cache is where the first compiled code came from (Plugin.CompileCache).
	cache CompileCache
	// compiled is closed once the VM runs compiled code, or will not
	// (tiered.go): Plugin.WaitCompiled.
	compiled chan struct{}

	calls    atomic.Uint64
	failures atomic.Uint64
	// callNanos is the time spent in the guest's callbacks, so the admin
	// dashboard can show a plugin's mean time per call.
	callNanos atomic.Uint64
	nextInst  atomic.Uint64

	// createMu orders instance creation with plugins coming and going, so
	// every instance in insts has a root context for every plugin.
	createMu sync.Mutex

	mu      sync.Mutex
	refs    int
	plugins []*Plugin
	insts   []*instance
	// retired are the instances of the code the VM moved away from that
	// are still open (tiered.go): closed with the VM.
	retired []*instance
	closed  bool
	growing bool
	// fails counts failures (instances broken, replacements that failed
	// to start) since a stream last ended well; failing is set when it
	// reaches FailingAfter and cleared by the next stream that ends well,
	// so each transition is logged once.
	fails   int
	failing bool
	nextTry time.Time
	// troubled is set with the first failure and cleared by the
	// success after it, so that a stream that ends well takes mu only
	// when there is a count to reset.
	troubled  atomic.Bool
	stopJan   chan struct{}
	janitorWG sync.WaitGroup
	bg        sync.WaitGroup // pool growth in flight

	failMetrics sync.Map // cause -> metric id
	// droppedLogMetric is wasm_log_lines_dropped_total's id, once defined.
	droppedLogOnce   sync.Once
	droppedLogMetric uint32
	droppedLogOK     bool
}

// vmFor returns the VM a plugin runs in, sharing one when its vm_id says
// so, with a reference taken.
func (e *Engine) vmFor(ctx context.Context, cfg *PluginConfig) (*vm, error) {
	key := vmKey{sum: sha256.Sum256(cfg.Wasm), vmID: cfg.VMID, vmConfig: string(cfg.VMConfig), trusted: cfg.Trusted,
		instances: cfg.Instances, memory: cfg.MemoryLimit, callTimeout: cfg.CallTimeout,
		startTimeout: cfg.StartTimeout, idle: cfg.IdleTimeout, bko: cfg.RestartBackoff}
	shared := cfg.VMID != ""
	if shared {
		e.mu.Lock()
		if v := e.vms[key]; v != nil {
			v.mu.Lock()
			if !v.closed {
				v.refs++
				v.mu.Unlock()
				e.mu.Unlock()
				return v, nil
			}
			v.mu.Unlock()
		}
		e.mu.Unlock()
	}
	cm, full, err := e.compileTiered(ctx, cfg.Wasm, key.sum, cfg.Trusted)
	if err != nil {
		return nil, err
	}
	v := &vm{e: e, cm: cm, cache: cm.cache, compiled: make(chan struct{}), key: key, shared: shared, cfg: *cfg, version: cm.version, refs: 1,
		sha: hex.EncodeToString(cm.key.sum[:]), stopJan: make(chan struct{}), name: cfg.Name}
	v.cfg.Wasm = nil // compiled: holding the bytes would keep them on the heap
	if shared {
		v.name = cfg.VMID
		v.log = e.log.Named("wasm").With(zap.String("vm_id", cfg.VMID))
	} else {
		v.log = e.log.Named("wasm").With(zap.String("plugin", cfg.Name))
	}
	v.janitorWG.Add(1)
	go v.janitor()
	if full != nil {
		v.log.Info("serving the module through wazero's interpreter until its compile finishes")
		v.bg.Add(1)
		go v.upgrade(full)
	} else {
		close(v.compiled)
	}
	if shared {
		e.mu.Lock()
		if other := e.vms[key]; other != nil && !other.closed {
			// Loaded concurrently: use the first, drop ours.
			other.mu.Lock()
			other.refs++
			other.mu.Unlock()
			e.mu.Unlock()
			v.release()
			return other, nil
		}
		e.vms[key] = v
		e.mu.Unlock()
	}
	return v, nil
}

// release drops a reference; the last one closes the instances.
func (v *vm) release() {
	v.mu.Lock()
	v.refs--
	if v.refs > 0 {
		v.mu.Unlock()
		return
	}
	v.closed = true
	close(v.stopJan)
	insts := v.insts
	v.insts = nil
	retired := v.retired
	v.mu.Unlock()
	if v.shared {
		v.e.mu.Lock()
		if v.e.vms[v.key] == v {
			delete(v.e.vms, v.key)
		}
		v.e.mu.Unlock()
	}
	v.janitorWG.Wait()
	for _, in := range insts {
		in.close(errPluginClosed)
	}
	for _, in := range retired {
		// A stream still pinned closes it when it ends; callouts in
		// flight are for no one now, as Envoy cancels a deleted
		// plugin's.
		if in.load.Load() == 0 {
			in.closeRetired()
		}
	}
	v.bg.Wait()
	v.e.release(context.Background(), v.cm)
}

var errPluginClosed = errors.New("plugin closed")

// addPlugin starts p's root context in every instance, or in a first
// instance when there is none. A refusal anywhere undoes it everywhere.
func (v *vm) addPlugin(ctx context.Context, p *Plugin) error {
	v.createMu.Lock()
	defer v.createMu.Unlock()
	v.mu.Lock()
	v.plugins = append(v.plugins, p)
	insts := append([]*instance(nil), v.insts...)
	v.mu.Unlock()
	if len(insts) == 0 {
		in, err := v.newInstance(ctx)
		if err != nil {
			v.dropPlugin(p)
			return err
		}
		v.mu.Lock()
		v.insts = append(v.insts, in)
		v.mu.Unlock()
		return nil
	}
	for i, in := range insts {
		in.mu.Lock()
		err := in.addRoot(p)
		in.unlock()
		if err != nil {
			v.dropPlugin(p)
			for _, done := range insts[:i] {
				done.mu.Lock()
				done.removeRoot(p)
				done.unlock()
			}
			return err
		}
	}
	return nil
}

func (v *vm) dropPlugin(p *Plugin) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, x := range v.plugins {
		if x == p {
			v.plugins = append(v.plugins[:i:i], v.plugins[i+1:]...)
			return
		}
	}
}

// removePlugin deletes p's root contexts. Where proxy_on_done returns
// false it waits (up to DoneTimeout, all instances at once) for the plugin
// to call proxy_done before proxy_on_delete, as proxy-wasm-cpp-host does
// when a plugin shuts down; the root context keeps getting its ticks and
// call replies meanwhile.
func (v *vm) removePlugin(p *Plugin) {
	v.createMu.Lock()
	v.dropPlugin(p)
	v.mu.Lock()
	insts := append([]*instance(nil), v.insts...)
	v.mu.Unlock()
	var waits []<-chan struct{}
	for _, in := range insts {
		in.mu.Lock()
		if w := in.beginRemoveRoot(p); w != nil {
			waits = append(waits, w)
		}
		in.unlock()
	}
	// New instances no longer get p's root context, so creation may go on
	// while this one waits.
	v.createMu.Unlock()
	awaitDone(p.log, waits, p.cfg.DoneTimeout)
	for _, in := range insts {
		in.mu.Lock()
		in.finishRemoveRoot(p)
		in.unlock()
	}
}

func (v *vm) stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Stats{SHA256: v.sha, ABI: v.version.String(), Instances: len(v.insts),
		Calls: v.calls.Load(), CallSeconds: float64(v.callNanos.Load()) / 1e9, Failures: v.failures.Load(),
		Failing: v.failing, ConsecutiveFailures: v.fails}
	for _, in := range v.insts {
		s.MemoryBytes += in.memory.size.Load()
	}
	return s
}

// pick chooses the instance for a new stream and reserves a slot on it:
// the least loaded one, growing the pool in the background while every
// instance is busy.
func (v *vm) pick(ctx context.Context) (*instance, error) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrClosed, ErrUnavailable)
	}
	var best *instance
	for _, in := range v.insts {
		if best == nil || in.load.Load() < best.load.Load() {
			best = in
		}
	}
	if best == nil {
		if time.Now().Before(v.nextTry) {
			v.mu.Unlock()
			return nil, fmt.Errorf("replacement instance backing off: %w", ErrUnavailable)
		}
		v.mu.Unlock()
		in, err := v.replace(ctx)
		if err != nil {
			return nil, err
		}
		v.mu.Lock()
		best = in
	} else if best.load.Load() > 0 && len(v.insts) < v.cfg.Instances && !v.growing && !time.Now().Before(v.nextTry) {
		v.growing = true
		v.bg.Add(1)
		go v.grow()
	}
	best.load.Add(1)
	v.mu.Unlock()
	return best, nil
}

// replace makes an instance when none is left, one caller at a time.
func (v *vm) replace(ctx context.Context) (*instance, error) {
	v.createMu.Lock()
	defer v.createMu.Unlock()
	v.mu.Lock()
	if len(v.insts) > 0 {
		in := v.insts[0]
		v.mu.Unlock()
		return in, nil
	}
	if v.closed || time.Now().Before(v.nextTry) {
		v.mu.Unlock()
		return nil, fmt.Errorf("replacement instance backing off: %w", ErrUnavailable)
	}
	v.mu.Unlock()
	in, err := v.newInstance(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.noteFailureLocked()
		v.log.Error("replacing wasm instance", zap.Error(err))
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if v.closed {
		go in.close(errPluginClosed)
		return nil, fmt.Errorf("%w: %w", ErrClosed, ErrUnavailable)
	}
	v.insts = append(v.insts, in)
	return in, nil
}

func (v *vm) grow() {
	defer v.bg.Done()
	v.createMu.Lock()
	defer v.createMu.Unlock()
	// Asked for before the wait for createMu: meanwhile a stream may have
	// made the instance itself (replace), or instances broke and the
	// restart backoff began. Making one anyway would go past Instances,
	// or serve streams the backoff must refuse.
	v.mu.Lock()
	if v.closed || len(v.insts) >= v.cfg.Instances || time.Now().Before(v.nextTry) {
		v.growing = false
		v.mu.Unlock()
		return
	}
	v.mu.Unlock()
	in, err := v.newInstance(context.Background())
	v.mu.Lock()
	defer v.mu.Unlock()
	v.growing = false
	if err != nil {
		v.noteFailureLocked()
		v.log.Error("growing wasm instance pool", zap.Error(err))
		return
	}
	if v.closed {
		go in.close(errPluginClosed)
		return
	}
	v.insts = append(v.insts, in)
}

// noteFailureLocked pushes the next instance creation back, doubling per
// consecutive failure after the first, so a module that crashes on every
// request cannot turn into a crash loop.
func (v *vm) noteFailureLocked() {
	v.troubled.Store(true)
	v.fails++
	if v.fails >= FailingAfter && !v.failing {
		v.failing = true
		v.log.Warn("plugin keeps failing: its instances are replaced with backoff, and it is reported failing until a stream is served",
			zap.Int("consecutive_failures", v.fails))
	}
	if v.fails == 1 {
		return
	}
	d := v.cfg.RestartBackoff << min(v.fails-2, 16)
	v.nextTry = time.Now().Add(min(d, maxRestartBackoff))
}

const maxRestartBackoff = 30 * time.Second

// FailingAfter is how many consecutive failures (with no stream served
// well in between) make a plugin failing: its Stats say so, and a warning
// is logged once, rather than one error per replaced instance going by
// unnoticed.
const FailingAfter = 5

// noteSuccess resets the backoff once an instance has served a stream.
func (v *vm) noteSuccess() {
	if !v.troubled.Load() {
		return
	}
	v.mu.Lock()
	v.troubled.Store(false)
	if v.failing {
		v.failing = false
		v.log.Info("plugin recovered: a stream was served after consecutive failures",
			zap.Int("consecutive_failures", v.fails))
	}
	v.fails = 0
	v.nextTry = time.Time{}
	v.mu.Unlock()
}

// remove drops a broken instance from the pool and starts its replacement.
func (v *vm) remove(in *instance) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, x := range v.insts {
		if x == in {
			v.insts = append(v.insts[:i:i], v.insts[i+1:]...)
			break
		}
	}
	v.noteFailureLocked()
	if len(v.insts) == 0 && !v.closed && !v.growing && len(v.plugins) > 0 && !time.Now().Before(v.nextTry) {
		// Replace it now rather than on the next stream's time.
		v.growing = true
		v.bg.Add(1)
		go v.grow()
	}
}

// janitor closes instances idle past IdleTimeout, keeping one.
func (v *vm) janitor() {
	defer v.janitorWG.Done()
	t := time.NewTicker(max(v.cfg.IdleTimeout/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-v.stopJan:
			return
		case <-t.C:
		}
		cutoff := monoNow() - int64(v.cfg.IdleTimeout)
		var idle []*instance
		v.mu.Lock()
		keep := v.insts[:0:0]
		for i, in := range v.insts {
			if i > 0 && in.load.Load() == 0 && in.lastUsed.Load() < cutoff && !in.busyOrAwaitingCallout() {
				idle = append(idle, in)
				continue
			}
			keep = append(keep, in)
		}
		v.insts = keep
		v.mu.Unlock()
		for _, in := range idle {
			if in.closeIfQuiet(errors.New("idle")) {
				continue
			}
			// A root context waits for a callout's answer (a jwt
			// JWKS fetch on its timer): closing would drop it, and
			// the fetch would be made again. The instance serves on;
			// the janitor looks at it again once it is idle.
			v.mu.Lock()
			if v.closed {
				v.mu.Unlock()
				in.close(errPluginClosed)
				continue
			}
			v.insts = append(v.insts, in)
			v.mu.Unlock()
		}
	}
}

// recordFailure counts a broken instance by cause, in Stats and as the
// metric wasm_instance_failures_total with plugin (or vm_id) and cause
// labels.
// countDroppedLog adds n to the plugin's count of log lines dropped for
// going past the per-call limits.
func (v *vm) countDroppedLog(n int) {
	m := v.e.cfg.Metrics
	v.droppedLogOnce.Do(func() {
		id, err := m.Define(Counter, "wasm_log_lines_dropped_total_plugin="+v.name)
		v.droppedLogMetric, v.droppedLogOK = id, err == nil
	})
	if v.droppedLogOK {
		_ = m.Increment(v.droppedLogMetric, int64(n))
	}
}

func (v *vm) recordFailure(cause string) {
	v.failures.Add(1)
	m := v.e.cfg.Metrics
	id, ok := v.failMetrics.Load(cause)
	if !ok {
		nid, err := m.Define(Counter, "wasm_instance_failures_total_plugin="+v.name+"_cause="+cause)
		if err != nil {
			return
		}
		id, _ = v.failMetrics.LoadOrStore(cause, nid)
	}
	_ = m.Increment(id.(uint32), 1)
}
