package wasmfilter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/filter"
)

// WasmFactory is a Factory backed by one loaded generation of a Wasm
// plugin. The runtime loads the plugin (hostabi.Engine.Load), wraps it here,
// and on reload wraps the new generation and closes the old factory.
type WasmFactory struct {
	p   *hostabi.Plugin
	log *zap.Logger
	// DrainTimeout bounds Close; default 5m (streams end with their route
	// timeouts long before).
	DrainTimeout time.Duration
}

// NewWasmFactory wraps a loaded plugin.
func NewWasmFactory(p *hostabi.Plugin, log *zap.Logger) *WasmFactory {
	if log == nil {
		log = zap.NewNop()
	}
	return &WasmFactory{p: p, log: log.With(zap.String("plugin", p.Name())), DrainTimeout: 5 * time.Minute}
}

// Name implements Factory.
func (f *WasmFactory) Name() string { return f.p.Name() }

// FailOpen implements Factory.
func (f *WasmFactory) FailOpen() bool { return f.p.FailOpen() }

// Status is the admin /plugins entry: version, instances, memory, calls,
// failures.
func (f *WasmFactory) Status() any { return f.p.Stats() }

// WaitCompiled returns once the plugin runs compiled code (a built-in
// loaded before its compiled code was cached starts on wazero's
// interpreter), or when ctx ends: for tests and benchmarks that measure
// the compiled path.
func (f *WasmFactory) WaitCompiled(ctx context.Context) error { return f.p.WaitCompiled(ctx) }

// Close waits (up to DrainTimeout) for the streams on this generation to
// end, then frees its instances.
func (f *WasmFactory) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), f.DrainTimeout)
	defer cancel()
	if err := f.p.Close(ctx); err != nil {
		f.log.Warn("closing wasm plugin", zap.Error(err))
	}
}

// NewFilter implements Factory. An error (no instance can serve) leaves the
// failure policy to the caller, as Factory says.
func (f *WasmFactory) NewFilter(ctx context.Context, s filter.Stream) (filter.HTTPFilter, error) {
	// The stream context and the host view live in one object, from
	// filterPool (zero): a stream costs no allocation once one ended.
	w := filterPool.Get().(*wasmFilter)
	w.f, w.host.s, w.host.ended = f, s, false
	err := f.p.InitHTTPStream(ctx, &w.hs, &w.host)
	if errors.Is(err, hostabi.ErrClosed) {
		return nil, fmt.Errorf("%w: %w", filter.ErrClosed, err)
	}
	if err != nil {
		// hostabi may have kept nothing of a stream it did not begin, but
		// a failed start is rare: w is left to the collector.
		return nil, err
	}
	return w, nil
}

// filterPool holds zeroed wasmFilters for the next streams (their
// stream contexts Reset, with the buffers they grew). A filter goes
// back once its OnDone has returned and hostabi has nothing queued for it
// (HTTPStream.Settled): the proxy calls a filter nothing after its OnDone
// (filter.Finisher), so nothing else reaches it.
var filterPool = sync.Pool{New: func() any { return new(wasmFilter) }}

// wasmFilter is the filter of one stream: hostabi's stream context plus
// the failure policy.
type wasmFilter struct {
	f    *WasmFactory
	hs   hostabi.HTTPStream
	host wasmStreamHost
	// failed: the instance broke; with fail-open the filter steps aside,
	// with fail-closed the stream already has its 503.
	failed bool
}

// failureReply is what a fail-closed plugin's stream gets, as Envoy (503).
func failureReply(err error) filter.LocalReply {
	return filter.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("wasm filter failed\n"),
		Details: "wasm_fail_stream", GRPCStatus: 14}
}

func (w *wasmFilter) status(s filter.Stream, a hostabi.Action, err error) filter.Status {
	if err != nil {
		if !w.failed {
			w.failed = true
			var fe *hostabi.FailureError
			if !errors.As(err, &fe) {
				w.f.log.Warn("wasm filter callback failed", zap.Error(err))
			}
			if !w.f.FailOpen() {
				s.SendLocalReply(failureReply(err))
				return filter.StopIteration
			}
		}
		if w.f.FailOpen() {
			return filter.Continue
		}
		return filter.StopIteration
	}
	switch a {
	case hostabi.Pause:
		return filter.StopIteration
	case hostabi.Buffer:
		return filter.StopIterationAndBuffer
	}
	return filter.Continue
}

func (w *wasmFilter) skip() bool { return w.failed && w.f.FailOpen() }

// skipResponse: a filter whose instance failed is not entered on the
// response either way; with fail-closed the response is its own 503
// passing back through the chain, which must not stop at it (Envoy's
// failure_local_reply_sent_).
func (w *wasmFilter) skipResponse() bool { return w.failed }

func (w *wasmFilter) OnRequestHeaders(s filter.Stream, endOfStream bool) filter.Status {
	if w.skip() {
		return filter.Continue
	}
	a, err := w.hs.OnRequestHeaders(endOfStream)
	return w.status(s, a, err)
}

func (w *wasmFilter) OnResponseHeaders(s filter.Stream, endOfStream bool) filter.Status {
	if w.skipResponse() {
		return filter.Continue
	}
	a, err := w.hs.OnResponseHeaders(endOfStream)
	return w.status(s, a, err)
}

func (w *wasmFilter) OnRequestBody(s filter.Stream, b *filter.Body, endOfStream bool) filter.Status {
	if w.skip() {
		return filter.Continue
	}
	out, a, err := w.hs.OnRequestBody(b.Data, endOfStream)
	b.Data = out
	return w.status(s, a, err)
}

func (w *wasmFilter) OnResponseBody(s filter.Stream, b *filter.Body, endOfStream bool) filter.Status {
	if w.skipResponse() {
		return filter.Continue
	}
	out, a, err := w.hs.OnResponseBody(b.Data, endOfStream)
	b.Data = out
	return w.status(s, a, err)
}

func (w *wasmFilter) OnRequestTrailers(s filter.Stream) filter.Status {
	if w.skip() {
		return filter.Continue
	}
	a, err := w.hs.OnRequestTrailers()
	return w.status(s, a, err)
}

func (w *wasmFilter) OnResponseTrailers(s filter.Stream) filter.Status {
	if w.skipResponse() {
		return filter.Continue
	}
	a, err := w.hs.OnResponseTrailers()
	return w.status(s, a, err)
}

func (w *wasmFilter) OnLog(filter.Stream) {
	if w.failed {
		return
	}
	_ = w.hs.OnLog()
}

func (w *wasmFilter) OnDone(filter.Stream) {
	_ = w.hs.OnDone()
	if !w.hs.Settled() {
		// An action still queued (a Resume from a tick's callback racing
		// the stream's end) holds the host: it must find the stream
		// over, and w is left to the collector.
		w.host.end()
		return
	}
	// Nothing queued, and nothing is queued once OnDone has returned:
	// no other goroutine reaches the host, so ended needs no lock.
	// Zeroed but ended: a host call can reach a filter only while
	// hostabi holds it (Settled), yet one that did would find the stream
	// over rather than a nil one. The stream context keeps its buffers
	// for the next stream (Reset).
	w.hs.Reset()
	w.f, w.failed = nil, false
	w.host = wasmStreamHost{ended: true}
	filterPool.Put(w)
}

// SkippedCallbacks answers filter.Skipper from the plugin's
// sluice_skip_callbacks mask: its bits 0-6 are filter.Callbacks' order.
func (w *wasmFilter) SkippedCallbacks() filter.Callbacks {
	return filter.Callbacks(w.hs.SkippedCallbacks()) & (filter.LogCallback<<1 - 1)
}

// DoneIsFinal answers filter.Finisher: once OnDone has returned, hostabi
// has deleted the stream context (no callback reaches it) and the host
// view drops what a callback on another goroutine still had queued.
func (w *wasmFilter) DoneIsFinal() bool { return true }
