package hostabi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
	"github.com/sluice-proxy/sluice/hostabi/internal/interrupt"
)

type callback int

const (
	cbInitialize callback = iota
	cbMain
	cbStart
	cbMemoryAllocate
	cbContextCreate
	cbVMStart
	cbConfigure
	cbRequestHeaders
	cbRequestBody
	cbRequestTrailers
	cbResponseHeaders
	cbResponseBody
	cbResponseTrailers
	cbLog
	cbDone
	cbDelete
	cbTick
	cbQueueReady
	cbHTTPCallResponse
	cbGRPCInitialMetadata
	cbGRPCReceive
	cbGRPCTrailingMetadata
	cbGRPCClose
	cbForeignFunction
	cbNewConnection
	cbDownstreamData
	cbUpstreamData
	cbDownstreamClose
	cbUpstreamClose
	// cbCreateRequestHeaders is sluice's proxy_on_context_create and
	// proxy_on_request_headers in one call into the guest, for the SDKs
	// that export it (see HTTPStream.enter).
	cbCreateRequestHeaders
	// cbStartSection is the module's start function, which the deadline
	// rewrite exports instead of letting wazero run it at instantiation.
	cbStartSection
	numCallbacks
)

var callbackNames = [numCallbacks]string{
	"_initialize", "main", "_start", "proxy_on_memory_allocate", "proxy_on_context_create",
	"proxy_on_vm_start", "proxy_on_configure",
	"proxy_on_request_headers", "proxy_on_request_body", "proxy_on_request_trailers",
	"proxy_on_response_headers", "proxy_on_response_body", "proxy_on_response_trailers",
	"proxy_on_log", "proxy_on_done", "proxy_on_delete", "proxy_on_tick", "proxy_on_queue_ready",
	"proxy_on_http_call_response",
	"proxy_on_grpc_receive_initial_metadata", "proxy_on_grpc_receive",
	"proxy_on_grpc_receive_trailing_metadata", "proxy_on_grpc_close",
	"proxy_on_foreign_function",
	"proxy_on_new_connection", "proxy_on_downstream_data", "proxy_on_upstream_data",
	"proxy_on_downstream_connection_close", "proxy_on_upstream_connection_close",
	"sluice_on_context_create_request_headers",
	interrupt.StartExport,
}

// Action is what a stream callback asks of the filter chain.
type Action int

const (
	// Continue passes the headers, chunk or trailers on.
	Continue Action = iota
	// Pause stops iteration until the filter continues the stream (or
	// answers locally). From a body callback: hold this chunk.
	Pause
	// Buffer (body callbacks) holds this and later chunks and calls the
	// filter again with the whole body at end of stream.
	Buffer
)

func (a Action) String() string {
	switch a {
	case Continue:
		return "Continue"
	case Pause:
		return "Pause"
	case Buffer:
		return "Buffer"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// HTTPStream is one HTTP stream's context in one instance of a plugin.
// Its methods are called from the stream's goroutine, in Envoy's order;
// an error means the instance broke during (or before) the callback and the
// plugin's failure policy applies.
type HTTPStream struct {
	in     *instance
	plugin *Plugin
	root   *rootContext
	rootID uint32
	id     uint32
	host   StreamHost
	// skip is the root's sluice_skip_callbacks mask when the stream began:
	// what SkippedCallbacks tells the proxy, which builds its chain once.
	skip uint32
	// created: the guest has the stream's context. With
	// sluice_on_context_create_request_headers, proxy_on_context_create
	// waits for the first callback that enters the guest.
	created bool
	// released: the guest freed the context itself, at the end of a
	// callback the host told was its last (see lastEntry): OnDone then
	// calls no proxy_on_delete.
	released bool

	// network: an L4 connection (NewNetworkStream), not an HTTP stream.
	network bool

	// deferred holds the response-header edits the filter handed over at
	// request time (sluice_defer_response_headers), applied at its
	// response headers: the runs of the calls' arguments, checked. Its
	// storage outlives the stream when the caller Resets s for another
	// one. deferredSize is what the edits count against
	// maxDeferredBytes; deferClosed: they have been applied. Guarded by
	// in.mu.
	deferred     []byte
	deferredSize int
	deferClosed  bool

	// Guarded by in.mu. Bodies are indexed by BufferType: HTTP request
	// and response bodies, downstream and upstream data.
	body    [4][]byte
	hasBody [4]bool
	bodyEOS [4]bool
	active  bool
	resumed [2]bool
	replied bool
	done    bool

	// queued counts the actions hostcalls queued for the stream's host
	// (instance.pending) that have not yet run: they run after the
	// instance's lock, possibly on another goroutine, and hold the host.
	queued atomic.Int32
}

// NewHTTPStream creates a stream context on an instance of the plugin.
// It returns ErrUnavailable (wrapped) when no instance can serve.
func (p *Plugin) NewHTTPStream(ctx context.Context, host StreamHost) (*HTTPStream, error) {
	s := new(HTTPStream)
	if err := p.newStream(ctx, s, host, false); err != nil {
		return nil, err
	}
	return s, nil
}

// InitHTTPStream is NewHTTPStream into a stream the caller allocated (a
// zero HTTPStream, usually a field of the caller's per-stream filter, or
// one Reset after its last stream), so that a filter costs the proxy one
// allocation, not two. s must not be copied afterwards, nor reused
// before OnDone has returned and Settled says so.
func (p *Plugin) InitHTTPStream(ctx context.Context, s *HTTPStream, host StreamHost) error {
	return p.newStream(ctx, s, host, false)
}

// Reset readies s for another InitHTTPStream once OnDone has returned and
// Settled says so: it is zero again but keeps the storage it grew (the
// buffer of deferred response-header edits, up to maxKeptDeferred), so a
// caller that pools its filters serves a stream that defers edits
// without taking a buffer from elsewhere.
func (s *HTTPStream) Reset() {
	buf := s.deferred[:0]
	if cap(buf) > maxKeptDeferred {
		buf = nil
	}
	*s = HTTPStream{}
	s.deferred = buf
}

// maxKeptDeferred is the largest buffer of deferred edits Reset keeps: a
// stream's CORS and rate-limit headers take a few hundred bytes.
const maxKeptDeferred = 2 << 10

func (p *Plugin) newStream(ctx context.Context, s *HTTPStream, host StreamHost, network bool) error {
	if !p.beginStream() {
		return fmt.Errorf("plugin %q: %w: %w", p.cfg.Name, ErrClosed, ErrUnavailable)
	}
	in, err := p.vm.pick(ctx)
	if err != nil {
		p.endStream()
		return fmt.Errorf("plugin %q: %w", p.cfg.Name, err)
	}
	// Field by field: s is zero (its callers' contract), and copying a
	// whole HTTPStream into the heap costs a write barrier over all of it
	// while the GC runs.
	s.in, s.plugin, s.host, s.network = in, p, host, network
	in.mu.Lock()
	rc := in.rootContextOf(p)
	if in.broken != nil || rc == nil {
		err := in.broken
		if err == nil {
			err = errors.New("instance has no root context for the plugin")
		}
		in.mu.Unlock()
		s.release()
		return fmt.Errorf("plugin %q: %w: %w", p.cfg.Name, ErrUnavailable, err)
	}
	s.root, s.rootID, s.skip = rc, rc.id, rc.skip
	s.id = in.nextID
	in.nextID++
	in.streams.put(s)
	if !network && in.has(cbCreateRequestHeaders) && s.skip&(1<<cbRequestHeaders) == 0 {
		// The guest creates the context with its request headers, the
		// stream's first callback (enter): one call into it, not two.
		in.mu.Unlock()
		return nil
	}
	s.created = true
	in.effective, in.effStream = s.id, s
	_, err = in.call(cbContextCreate, uint64(s.id), uint64(rc.id))
	if err != nil {
		in.streams.del(s.id)
		s.done = true
		in.effStream = nil
		in.unlock()
		s.release()
		return err
	}
	in.unlock()
	return nil
}

// release gives back the stream's slot on its instance and its plugin.
func (s *HTTPStream) release() {
	if s.in.load.Add(-1) == 0 {
		// Idle from now: only an instance without streams is reaped, so
		// its clock starts when the last one ends.
		s.in.lastUsed.Store(monoNow())
		if s.in.retired.Load() != nil {
			s.in.closeRetiredIfIdle()
		}
	}
	s.plugin.endStream()
}

// createThen creates the stream's context in the guest, late, then runs
// cb. Callers hold mu.
func (s *HTTPStream) createThen(cb callback, args ...uint64) (uint64, error) {
	s.created = true
	in := s.in
	if _, err := in.call(cbContextCreate, uint64(s.id), uint64(s.rootID)); err != nil {
		return 0, err
	}
	in.effective = s.id
	return in.call(cb, args...)
}

// ID is the stream's context id in its instance.
func (s *HTTPStream) ID() uint32 { return s.id }

// SkippedCallbacks is the stream's plugin's sluice_skip_callbacks mask as
// its instance holds it now, in the argument's layout: bit 0 is
// on_request_headers, bit 6 on_log, bit 7 on_done. A plugin that defers
// response-header edits (foreign_deferred.go) has on_response_headers
// reported wanted: the host applies them there.
func (s *HTTPStream) SkippedCallbacks() uint32 {
	m := s.skip
	if m&deferredEdits != 0 {
		// The host applies the plugin's deferred edits there.
		m &^= deferredEdits | 1<<cbResponseHeaders
	}
	return m >> cbRequestHeaders
}

// invoke runs one stream callback with the stream as effective context.
func (s *HTTPStream) invoke(cb callback, args ...uint64) (uint64, error) {
	r, _, err := s.enter(cb, 0, noCount, args...)
	return r, err
}

// repliedOn says whether a callback in direction d stops because the
// stream has its local reply (or closed); before says whether it had one
// before the callback. On the request side (and a network stream's) it
// does: the request goes no further. On the response side only a reply
// made in the callback itself does: a reply made earlier is the response
// now passing back through the filters the request reached (the one that
// made it included, as in Envoy), which must not stop at its maker.
func (s *HTTPStream) repliedOn(d StreamType, before bool) bool {
	return s.replied && (d != StreamResponse || !before)
}

// noCount: the callback's arguments carry no header count.
const noCount = MapType(^uint32(0))

// entered is what a stream callback did to its stream besides its result,
// read under the lock of the call itself.
type entered struct {
	replied, resumed bool
}

// enter runs one stream callback with the stream as effective context,
// under one hold of the instance's lock: a callback the plugin skips
// (sluice_skip_callbacks) costs the lock and nothing more. When count is
// a map, the callback's second argument is that map's size, counted only
// when the guest is entered. resumed is d's half.
func (s *HTTPStream) enter(cb callback, d StreamType, count MapType, args ...uint64) (uint64, entered, error) {
	in := s.in
	in.mu.Lock()
	if s.done {
		in.mu.Unlock()
		return 0, entered{}, fmt.Errorf("plugin %q: stream %d already done", s.plugin.cfg.Name, s.id)
	}
	if cb == cbResponseHeaders && s.skip&deferredEdits != 0 {
		s.applyDeferred() // foreign_deferred.go
	}
	if s.root != nil && s.root.skip&(1<<cb) != 0 {
		// Continue, what the SDK's default would answer (unless the
		// stream has its local reply).
		e := entered{replied: s.repliedOn(d, true)}
		in.mu.Unlock()
		return 0, e, nil
	}
	if count != noCount {
		args[1] = s.headerCount(count)
	}
	final := len(args) == 3 && s.lastEntry(cb)
	if final {
		args[2] |= eosFinal
	}
	// The stream's header hostcalls find it without a lookup (stream).
	in.effective, in.effStream = s.id, s
	s.active = true
	s.resumed = [2]bool{}
	repliedBefore := s.replied
	var r uint64
	var err error
	switch {
	case s.created:
		r, err = in.call(cb, args...)
	case cb == cbRequestHeaders && in.has(cbCreateRequestHeaders):
		s.created = true
		r, err = in.call(cbCreateRequestHeaders, uint64(s.id), uint64(s.rootID), args[1], args[2])
	default:
		// The chain stopped before this filter's request headers (an
		// earlier filter answered): the guest still sees Envoy's order.
		r, err = s.createThen(cb, args...)
	}
	s.active = false
	if final && err == nil && uint32(r)&resultReleased != 0 {
		s.released = true
		r &^= resultReleased
	}
	e := entered{replied: s.repliedOn(d, repliedBefore), resumed: s.resumed[d&1]}
	in.unlock()
	return r, e, err
}

// eosFinal, in a headers callback's end_of_stream argument, tells a guest
// whose SDK releases contexts itself (bit 8 of sluice_skip_callbacks)
// that the callback is the stream's last entry into it; resultReleased,
// in the callback's result, answers that it freed the context.
const (
	eosFinal       = 2
	resultReleased = 1 << 8
)

// streamRelease is bit 8 of sluice_skip_callbacks where the host keeps
// the mask (shifted to callback order, it lands on cbDelete).
const streamRelease = 1 << cbDelete

// afterRequestHeaders are the stream callbacks that can enter the guest
// after its request headers, afterResponseHeaders after its response
// headers (request bodies may still be streaming then): when the plugin
// skips all of them, the headers callback is the stream's last entry.
const (
	afterResponseHeaders = 1<<cbRequestBody | 1<<cbRequestTrailers | 1<<cbResponseBody |
		1<<cbResponseTrailers | 1<<cbLog | 1<<cbDone
	afterRequestHeaders = afterResponseHeaders | 1<<cbResponseHeaders
)

// lastEntry says that cb is the stream's last entry into the guest and
// that the plugin's SDK can release the context after it. Callers hold
// mu.
func (s *HTTPStream) lastEntry(cb callback) bool {
	if s.root == nil || s.root.skip&streamRelease == 0 {
		return false
	}
	switch cb {
	case cbRequestHeaders:
		return s.root.skip&afterRequestHeaders == afterRequestHeaders
	case cbResponseHeaders:
		return s.root.skip&afterResponseHeaders == afterResponseHeaders
	}
	return false
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (s *HTTPStream) headerCount(t MapType) uint64 {
	if h := s.host.Headers(t); h != nil {
		return uint64(h.Len())
	}
	return 0
}

// headers runs a headers callback. Any pause value (StopIteration, the
// StopAll* variants) pauses, but unlike Envoy the body callbacks still come
// (proxy-wasm-cpp-host#143).
func (s *HTTPStream) headers(cb callback, t MapType, eos bool, d StreamType) (Action, error) {
	var r uint64
	var e entered
	var err error
	if s.in.headerArgs == 2 {
		r, e, err = s.enter(cb, d, t, uint64(s.id), 0)
	} else {
		r, e, err = s.enter(cb, d, t, uint64(s.id), 0, b2u(eos))
	}
	return action(r, e, err, false)
}

// action turns a stream callback's result into what the chain does.
func action(r uint64, e entered, err error, body bool) (Action, error) {
	switch {
	case err != nil:
		return Continue, err
	case e.replied:
		return Pause, nil
	case uint32(r) == uint32(abi.ActionContinue) || e.resumed:
		return Continue, nil
	case !body && uint32(r) == 2:
		// FilterHeadersStatus::ContinueAndEndStream: the chain goes on.
		return Continue, nil
	case body && (uint32(r) == 1 || uint32(r) == 2):
		// FilterDataStatus StopIterationAndBuffer / AndWatermark: what SDKs
		// return as "pause" from a body callback.
		return Buffer, nil
	default:
		return Pause, nil
	}
}

// OnRequestHeaders runs proxy_on_request_headers.
func (s *HTTPStream) OnRequestHeaders(endOfStream bool) (Action, error) {
	return s.headers(cbRequestHeaders, RequestHeaders, endOfStream, StreamRequest)
}

// OnResponseHeaders runs proxy_on_response_headers.
func (s *HTTPStream) OnResponseHeaders(endOfStream bool) (Action, error) {
	return s.headers(cbResponseHeaders, ResponseHeaders, endOfStream, StreamResponse)
}

// OnRequestBody runs proxy_on_request_body on a chunk (or the whole
// buffered body) and returns the chunk as the filter left it.
func (s *HTTPStream) OnRequestBody(chunk []byte, endOfStream bool) ([]byte, Action, error) {
	return s.bodyCallback(cbRequestBody, 0, chunk, endOfStream, StreamRequest)
}

// OnResponseBody runs proxy_on_response_body.
func (s *HTTPStream) OnResponseBody(chunk []byte, endOfStream bool) ([]byte, Action, error) {
	return s.bodyCallback(cbResponseBody, 1, chunk, endOfStream, StreamResponse)
}

func (s *HTTPStream) bodyCallback(cb callback, i int, chunk []byte, eos bool, d StreamType) ([]byte, Action, error) {
	s.in.mu.Lock()
	s.body[i], s.hasBody[i], s.bodyEOS[i] = chunk, true, eos
	if !s.done && s.root != nil && s.root.skip&(1<<cb) != 0 {
		// Every chunk passes every filter: one the plugin skips costs
		// the lock and nothing more (its later callbacks still read the
		// chunk, as when the guest was entered).
		e := entered{replied: s.repliedOn(d, true)}
		s.in.mu.Unlock()
		a, _ := action(0, e, nil, true)
		return chunk, a, nil
	}
	s.in.mu.Unlock()
	r, e, err := s.enter(cb, d, noCount, uint64(s.id), uint64(len(chunk)), b2u(eos))
	s.in.mu.Lock()
	out := s.body[i]
	s.in.mu.Unlock()
	a, err := action(r, e, err, true)
	if err != nil {
		return chunk, a, err
	}
	return out, a, nil
}

// OnRequestTrailers runs proxy_on_request_trailers.
func (s *HTTPStream) OnRequestTrailers() (Action, error) {
	r, e, err := s.enter(cbRequestTrailers, StreamRequest, RequestTrailers, uint64(s.id), 0)
	return action(r, e, err, false)
}

// OnResponseTrailers runs proxy_on_response_trailers.
func (s *HTTPStream) OnResponseTrailers() (Action, error) {
	r, e, err := s.enter(cbResponseTrailers, StreamResponse, ResponseTrailers, uint64(s.id), 0)
	return action(r, e, err, false)
}

// Settled says, after OnDone, that nothing of the instance holds the
// stream or its host any longer: no action a hostcall queued for it is
// left to run. s (zeroed) and its host may then serve another stream.
// Once OnDone has returned no action is queued again, so a false answer
// turns true at most when the last queued one has run.
func (s *HTTPStream) Settled() bool { return s.done && s.queued.Load() == 0 }

// OnLog runs proxy_on_log.
func (s *HTTPStream) OnLog() error {
	_, err := s.invoke(cbLog, uint64(s.id))
	return err
}

// OnDone runs proxy_on_done and proxy_on_delete and releases the stream's
// slot on its instance; it must be called exactly once, also after errors.
func (s *HTTPStream) OnDone() error {
	in := s.in
	in.mu.Lock()
	if s.done {
		in.mu.Unlock()
		return nil
	}
	var err error
	healthy := in.broken == nil
	if healthy {
		in.effective = s.id
		if !s.created {
			// Never entered (every callback skipped, or the chain stopped
			// before it): the guest gets its context_create, as in Envoy.
			s.created = true
			_, err = in.call(cbContextCreate, uint64(s.id), uint64(s.rootID))
			in.effective = s.id
		}
		if err == nil && (s.network || s.root == nil || s.root.skip&(1<<cbDone) == 0) {
			// A stream context's answer changes nothing (Envoy does not
			// wait for its proxy_done).
			_, err = in.call(cbDone, uint64(s.id))
		}
		if err == nil && !s.released {
			in.effective = s.id
			_, err = in.call(cbDelete, uint64(s.id))
		}
	}
	s.done = true
	s.dropDeferred() // foreign_deferred.go: not applied, if not already
	in.streams.del(s.id)
	if in.effStream == s {
		in.effStream = nil // do not keep the stream's host alive
	}
	in.unlock()
	s.release()
	if healthy && err == nil {
		in.vm.noteSuccess()
	}
	return err
}
