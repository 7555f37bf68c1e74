package hostabi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// PluginConfig is everything that makes one plugin generation. A Plugin is
// immutable: a changed module or config is a new Load.
type PluginConfig struct {
	Name   string
	RootID string
	// VMID names the namespace proxy_resolve_shared_queue looks in.
	VMID string
	// Wasm is the module's bytes.
	Wasm []byte
	// PluginConfig is given to proxy_on_configure, VMConfig to
	// proxy_on_vm_start (the runtime turns TOML tables into JSON).
	PluginConfig []byte
	VMConfig     []byte
	// FailOpen skips the filter when it breaks; the default (closed)
	// answers 503.
	FailOpen bool
	// Instances is the most instances kept; default GOMAXPROCS.
	Instances int
	// MemoryLimit caps each instance's linear memory; default 64MiB.
	MemoryLimit uint64
	// CallTimeout bounds each callback; default 100ms.
	CallTimeout time.Duration
	// StartTimeout bounds start-up (_initialize, vm_start, configure);
	// default 5s, since a Go runtime initialises in tens of milliseconds.
	StartTimeout time.Duration
	// IdleTimeout closes instances beyond the first unused this long;
	// default 1m.
	IdleTimeout time.Duration
	// Trusted runs the module without wazero's termination checks (see
	// Engine): callbacks are about five times faster for Go-built guests,
	// but CallTimeout is not enforced: a callback that never returns
	// holds its instance forever. For modules we build ourselves
	// (built-in plugins).
	Trusted bool
	// RestartBackoff: a broken instance is replaced at once, but after a
	// second consecutive failure the next instance waits this long, doubling
	// per failure up to 30s, so a module that crashes on every request
	// cannot crash-loop the host. Default 1s (Envoy's FAIL_RELOAD base).
	RestartBackoff time.Duration
}

func (c *PluginConfig) defaults() {
	if c.Instances <= 0 {
		c.Instances = runtime.GOMAXPROCS(0)
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = 64 << 20
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 100 * time.Millisecond
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Minute
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = time.Second
	}
}

const maxRestartBackoff = 30 * time.Second

// Plugin is one loaded generation of a plugin: a compiled module, its
// configuration and its pool of instances.
type Plugin struct {
	e       *Engine
	cfg     PluginConfig
	cm      *compiledModule
	log     *zap.Logger
	sha     string
	ctx     context.Context // ends at Close; http_calls hang off it
	cancel  context.CancelFunc
	version abi.Version

	calls    atomic.Uint64
	failures atomic.Uint64
	nextInst atomic.Uint64

	mu      sync.Mutex
	drained *sync.Cond
	insts   []*instance
	streams int
	// closing: Close is draining; streams are still served, since a stream
	// may have picked this generation just before the proxy swapped it out.
	closing bool
	// closed: the instances are gone.
	closed    bool
	growing   bool
	fails     int
	nextTry   time.Time
	createMu  sync.Mutex
	stopJan   chan struct{}
	janitorWG sync.WaitGroup
	bg        sync.WaitGroup // pool growth in flight

	failMetrics sync.Map // cause -> metric id
}

// Stats is a snapshot of a plugin for the admin listener.
type Stats struct {
	Name          string `json:"name"`
	SHA256        string `json:"sha256"`
	ABI           string `json:"abi"`
	Instances     int    `json:"instances"`
	MemoryBytes   uint64 `json:"memory_bytes"`
	ActiveStreams int    `json:"active_streams"`
	Calls         uint64 `json:"calls"`
	Failures      uint64 `json:"failures"`
}

// Load compiles (or reuses) the module, starts its first instance (vm_start
// and configure) and returns the plugin. Any failure refuses the plugin with
// an error naming the step.
func (e *Engine) Load(ctx context.Context, cfg PluginConfig) (*Plugin, error) {
	cfg.defaults()
	cm, err := e.compile(ctx, cfg.Wasm, cfg.Trusted)
	if err != nil {
		return nil, fmt.Errorf("loading plugin %q: %w", cfg.Name, err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &Plugin{
		e: e, cfg: cfg, cm: cm, ctx: pctx, cancel: cancel, version: cm.version,
		sha:     hex.EncodeToString(cm.key.sum[:]),
		log:     e.log.Named("wasm").With(zap.String("plugin", cfg.Name)),
		stopJan: make(chan struct{}),
	}
	p.drained = sync.NewCond(&p.mu)
	in, err := p.newInstance(ctx)
	if err != nil {
		cancel()
		e.release(ctx, cm)
		return nil, fmt.Errorf("loading plugin %q: %w", cfg.Name, err)
	}
	p.insts = append(p.insts, in)
	p.janitorWG.Add(1)
	go p.janitor()
	return p, nil
}

// Name is the plugin's configured name.
func (p *Plugin) Name() string { return p.cfg.Name }

// FailOpen reports the failure policy.
func (p *Plugin) FailOpen() bool { return p.cfg.FailOpen }

// Stats returns counters and sizes; safe from any goroutine.
func (p *Plugin) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Name: p.cfg.Name, SHA256: p.sha, ABI: p.version.String(), Instances: len(p.insts),
		ActiveStreams: p.streams, Calls: p.calls.Load(), Failures: p.failures.Load()}
	for _, in := range p.insts {
		s.MemoryBytes += in.memory.size.Load()
	}
	return s
}

// Close refuses new streams, waits until in-flight streams are done (or ctx
// ends), then closes every instance. Safe to call more than once.
func (p *Plugin) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil
	}
	p.closing = true
	close(p.stopJan)
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.drained.Broadcast()
		p.mu.Unlock()
	})
	for p.streams > 0 && ctx.Err() == nil {
		p.drained.Wait()
	}
	stop()
	insts := p.insts
	p.insts = nil
	p.closed = true
	left := p.streams
	p.mu.Unlock()
	p.janitorWG.Wait()
	for _, in := range insts {
		in.close(errPluginClosed)
	}
	p.bg.Wait()
	p.cancel()
	p.e.release(context.Background(), p.cm)
	if left > 0 {
		return fmt.Errorf("closing plugin %q: %d streams still open: %w", p.cfg.Name, left, ctx.Err())
	}
	return nil
}

var errPluginClosed = errors.New("plugin closed")

// pick chooses the instance for a new stream and reserves a slot on it:
// the least loaded one, growing the pool in the background while every
// instance is busy.
func (p *Plugin) pick(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("plugin %q: %w: %w", p.cfg.Name, ErrClosed, ErrUnavailable)
	}
	var best *instance
	for _, in := range p.insts {
		if best == nil || in.load.Load() < best.load.Load() {
			best = in
		}
	}
	if best == nil {
		if p.closing || time.Now().Before(p.nextTry) {
			p.mu.Unlock()
			return nil, fmt.Errorf("plugin %q: replacement instance backing off: %w", p.cfg.Name, ErrUnavailable)
		}
		p.mu.Unlock()
		in, err := p.replace(ctx)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		best = in
	} else if best.load.Load() > 0 && len(p.insts) < p.cfg.Instances && !p.growing && !p.closing && !time.Now().Before(p.nextTry) {
		p.growing = true
		p.bg.Add(1)
		go p.grow()
	}
	best.load.Add(1)
	p.streams++
	p.mu.Unlock()
	return best, nil
}

// replace makes an instance when none is left, one caller at a time.
func (p *Plugin) replace(ctx context.Context) (*instance, error) {
	p.createMu.Lock()
	defer p.createMu.Unlock()
	p.mu.Lock()
	if len(p.insts) > 0 {
		in := p.insts[0]
		p.mu.Unlock()
		return in, nil
	}
	if time.Now().Before(p.nextTry) {
		p.mu.Unlock()
		return nil, fmt.Errorf("plugin %q: replacement instance backing off: %w", p.cfg.Name, ErrUnavailable)
	}
	p.mu.Unlock()
	in, err := p.newInstance(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.noteFailureLocked()
		p.log.Error("replacing wasm instance", zap.Error(err))
		return nil, fmt.Errorf("plugin %q: %w: %w", p.cfg.Name, ErrUnavailable, err)
	}
	if p.closing {
		go in.close(errPluginClosed)
		return nil, fmt.Errorf("plugin %q: %w", p.cfg.Name, ErrUnavailable)
	}
	p.insts = append(p.insts, in)
	return in, nil
}

func (p *Plugin) grow() {
	defer p.bg.Done()
	p.createMu.Lock()
	in, err := p.newInstance(p.ctx)
	p.createMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.growing = false
	if err != nil {
		p.noteFailureLocked()
		p.log.Error("growing wasm instance pool", zap.Error(err))
		return
	}
	if p.closing {
		go in.close(errPluginClosed)
		return
	}
	p.insts = append(p.insts, in)
}

// noteFailureLocked pushes the next instance creation back, doubling per
// consecutive failure after the first, so a module that crashes on every
// request cannot turn into a crash loop.
func (p *Plugin) noteFailureLocked() {
	p.fails++
	if p.fails == 1 {
		return
	}
	d := p.cfg.RestartBackoff << min(p.fails-2, 16)
	p.nextTry = time.Now().Add(min(d, maxRestartBackoff))
}

// noteSuccess resets the backoff once an instance has served a callback.
func (p *Plugin) noteSuccess() {
	p.mu.Lock()
	p.fails = 0
	p.nextTry = time.Time{}
	p.mu.Unlock()
}

// remove drops a broken instance from the pool.
func (p *Plugin) remove(in *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.insts {
		if x == in {
			p.insts = append(p.insts[:i:i], p.insts[i+1:]...)
			break
		}
	}
	p.noteFailureLocked()
	if len(p.insts) == 0 && !p.closing && !p.growing && !time.Now().Before(p.nextTry) {
		// Replace it now rather than on the next stream's time.
		p.growing = true
		p.bg.Add(1)
		go p.grow()
	}
}

// streamDone releases a slot reserved by pick.
func (p *Plugin) streamDone(in *instance) {
	in.load.Add(-1)
	in.lastUsed.Store(time.Now().UnixNano())
	p.mu.Lock()
	p.streams--
	if p.streams == 0 {
		p.drained.Broadcast()
	}
	p.mu.Unlock()
}

// janitor closes instances idle past IdleTimeout, keeping one.
func (p *Plugin) janitor() {
	defer p.janitorWG.Done()
	t := time.NewTicker(max(p.cfg.IdleTimeout/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stopJan:
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-p.cfg.IdleTimeout).UnixNano()
		var idle []*instance
		p.mu.Lock()
		keep := p.insts[:0:0]
		for i, in := range p.insts {
			if i > 0 && in.load.Load() == 0 && in.lastUsed.Load() < cutoff {
				idle = append(idle, in)
				continue
			}
			keep = append(keep, in)
		}
		p.insts = keep
		p.mu.Unlock()
		for _, in := range idle {
			in.close(errors.New("idle"))
		}
	}
}

// recordFailure counts a broken instance by cause, in Stats and as the
// metric wasm_instance_failures_total with plugin and cause labels.
func (p *Plugin) recordFailure(cause string) {
	p.failures.Add(1)
	m := p.e.cfg.Metrics
	id, ok := p.failMetrics.Load(cause)
	if !ok {
		nid, err := m.Define(Counter, "wasm_instance_failures_total_plugin="+p.cfg.Name+"_cause="+cause)
		if err != nil {
			return
		}
		id, _ = p.failMetrics.LoadOrStore(cause, nid)
	}
	_ = m.Increment(id.(uint32), 1)
}
