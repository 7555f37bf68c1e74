package hostabi

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// PluginConfig is everything that makes one plugin generation. A Plugin is
// immutable: a changed module or config is a new Load.
type PluginConfig struct {
	Name   string
	RootID string
	// VMID names the namespace proxy_resolve_shared_queue looks in. Plugins
	// with the same non-empty VMID, module and VM settings (VMConfig,
	// Trusted and the limits below) share instances, as Envoy's plugins
	// with one vm_id share a VM: each has its own root context in every
	// instance.
	VMID string
	// Wasm is the module's bytes.
	Wasm []byte
	// SourceDigest identifies the module at its source (an OCI image's
	// manifest digest), for the log line of a trap or deadline; default
	// the module's own sha256.
	SourceDigest string
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
	// DoneTimeout bounds how long a closing plugin waits for proxy_done
	// after its root context's proxy_on_done returned false; past it the
	// root context is deleted anyway (and a warning logged), so a plugin
	// that never calls proxy_done cannot hold an old generation forever.
	// Default 10s.
	DoneTimeout time.Duration
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
	if c.DoneTimeout <= 0 {
		c.DoneTimeout = 10 * time.Second
	}
}

// Plugin is one loaded generation of a plugin: its configuration and root
// context in every instance of its VM.
type Plugin struct {
	vm  *vm
	cfg PluginConfig
	// seq numbers the plugins of the process, in load order
	// (instance.rootCache).
	seq uint64
	log *zap.Logger
	ctx context.Context // ends at Close; http_calls hang off it

	cancel context.CancelFunc

	// state counts the streams in flight (the low bits) with the
	// closing and closed flags: every stream begins and ends with one
	// atomic add, not a lock of the plugin its streams on every core share.
	state atomic.Int64
	// mu and drained: Close waits for the streams to end.
	mu      sync.Mutex
	drained *sync.Cond
}

const (
	// streamsClosing: Close is draining; streams are still served, since
	// a stream may have picked this generation just before the proxy
	// swapped it out.
	streamsClosing = int64(1) << 61
	// streamsClosed: the root contexts are gone; no stream begins.
	streamsClosed = int64(1) << 60
	streamsCount  = streamsClosed - 1
)

// Stats is a snapshot of a plugin for the admin listener. Instances,
// memory, calls and failures are its VM's (shared with the plugins of the
// same vm_id).
type Stats struct {
	Name          string `json:"name"`
	SHA256        string `json:"sha256"`
	ABI           string `json:"abi"`
	VMID          string `json:"vm_id,omitempty"`
	Instances     int    `json:"instances"`
	MemoryBytes   uint64 `json:"memory_bytes"`
	ActiveStreams int    `json:"active_streams"`
	Calls         uint64 `json:"calls"`
	// CallSeconds is the time the calls took in all (a nested call counts
	// in its caller's time too).
	CallSeconds float64 `json:"call_seconds"`
	Failures    uint64  `json:"failures"`
	// Failing: FailingAfter or more failures in a row, with no stream
	// served well since; ConsecutiveFailures counts them.
	Failing             bool `json:"failing"`
	ConsecutiveFailures int  `json:"consecutive_failures"`
}

// Load compiles (or reuses) the module, starts the plugin's root context
// (vm_start and configure) in its VM's instances and returns the plugin.
// Any failure refuses the plugin with an error naming the step.
func (e *Engine) Load(ctx context.Context, cfg PluginConfig) (*Plugin, error) {
	cfg.defaults()
	pctx, cancel := context.WithCancel(context.Background())
	p := &Plugin{cfg: cfg, ctx: pctx, cancel: cancel, seq: pluginSeq.Add(1),
		log: e.log.Named("wasm").With(zap.String("plugin", cfg.Name))}
	p.drained = sync.NewCond(&p.mu)
	v, err := e.vmFor(ctx, &cfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("loading plugin %q: %w", cfg.Name, err)
	}
	p.vm = v
	p.cfg.Wasm = nil // compiled: holding the bytes would keep them on the heap
	if err := v.addPlugin(ctx, p); err != nil {
		cancel()
		v.release()
		return nil, fmt.Errorf("loading plugin %q: %w", cfg.Name, err)
	}
	return p, nil
}

var pluginSeq atomic.Uint64

// Name is the plugin's configured name.
func (p *Plugin) Name() string { return p.cfg.Name }

// CompileCache tells where the plugin's compiled code came from: the disk
// cache (hit), a compile now (miss), or a compile with no disk cache (off).
// A module already compiled in this process reports how it first came.
func (p *Plugin) CompileCache() CompileCache { return p.vm.cache }

// FailOpen reports the failure policy.
func (p *Plugin) FailOpen() bool { return p.cfg.FailOpen }

// Stats returns counters and sizes; safe from any goroutine.
func (p *Plugin) Stats() Stats {
	streams := int(p.state.Load() & streamsCount)
	s := p.vm.stats()
	s.Name, s.ActiveStreams, s.VMID = p.cfg.Name, streams, p.cfg.VMID
	return s
}

// Close lets in-flight streams end (or ctx end), then deletes the plugin's
// root contexts; the VM's instances close with its last plugin. Safe to
// call more than once.
func (p *Plugin) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.state.Load()&streamsClosing != 0 {
		p.mu.Unlock()
		return nil
	}
	p.state.Or(streamsClosing)
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.drained.Broadcast()
		p.mu.Unlock()
	})
	for p.state.Load()&streamsCount > 0 && ctx.Err() == nil {
		p.drained.Wait()
	}
	stop()
	left := p.state.Or(streamsClosed) & streamsCount
	p.mu.Unlock()
	p.vm.removePlugin(p)
	p.vm.release()
	p.cancel()
	if left > 0 {
		return fmt.Errorf("closing plugin %q: %d streams still open: %w", p.cfg.Name, left, ctx.Err())
	}
	return nil
}

// beginStream counts a stream for draining; false once closed.
func (p *Plugin) beginStream() bool {
	if p.state.Add(1)&streamsClosed != 0 {
		p.state.Add(-1)
		return false
	}
	return true
}

func (p *Plugin) endStream() {
	if p.state.Add(-1) == streamsClosing {
		// The last stream of a draining plugin: wake Close (under mu, so
		// that the wake-up cannot come between its check and its wait).
		p.mu.Lock()
		p.drained.Broadcast()
		p.mu.Unlock()
	}
}
