// Package filtertest runs a proxy-wasm filter on sluice's real Wasm host
// (hostabi) with a simulated stream, so a filter's test reads as "these
// request headers in, these out, this local reply, these metrics":
//
//	f := filtertest.Load(t, wasm, filtertest.Options{Config: map[string]any{"header": "x-a"}})
//	r := f.Do(filtertest.Request{Headers: [][2]string{{":path", "/"}}})
//	if v, _ := r.RequestHeader("x-a"); v != "1" { ... }
//
// The stream has no sockets: the request goes through the filter's request
// callbacks, then, unless the filter answered locally, the given response
// goes through its response callbacks. Properties the filter reads come
// from Request.Properties (joined with "."), and what it sets is in
// Result.Properties. What the filter logged is in Filter.Logs.
//
// Ticks and timers are the host's own, on the clock: a test that waits
// for a tick (a delay, a retry) runs inside testing/synctest's bubble
// (synctest.Test), where time.Sleep(d) runs the ticks due within d at
// once. Filter.Start runs a stream on its own goroutine, so a test can
// act while it is paused (answer an http_call, let time pass) and run
// several streams at once.
package filtertest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
	proxystream "github.com/sluice-proxy/sluice/runtime/stream"
)

// Options configure the filter.
type Options struct {
	// Name (default "test") and RootID (default: none) as in sluice.toml.
	Name, RootID string
	// Config is the plugin configuration: []byte or string as is,
	// anything else as JSON.
	Config any
	// VMConfig likewise, for proxy_on_vm_start.
	VMConfig any
	// HTTP answers http_calls; nil makes them fail with BadArgument.
	HTTP hostabi.HTTPCaller
	// Shared is the shared data store; default a fresh in-memory one.
	Shared hostabi.SharedStore
	// Untrusted runs the module with wazero's termination checks (as
	// sluice runs user filters, with per-callback deadlines); the default
	// is the faster trusted mode.
	Untrusted bool
}

// Filter is a loaded filter.
type Filter struct {
	t       testing.TB
	Plugin  *hostabi.Plugin
	Metrics *hostabi.MemoryMetrics
	logs    *observer.ObservedLogs
}

// Log is a line the filter logged.
type Log struct {
	Level   zapcore.Level
	Message string
	// ContextID is the effective context when it was logged: the root
	// context's id, or a stream's (Result.ContextID).
	ContextID uint32
}

// Logs returns what the filter logged so far (proxy_log, and stdout and
// stderr for WASI guests), oldest first, at every level.
func (f *Filter) Logs() []Log {
	var out []Log
	for _, e := range f.logs.All() {
		id, ok := e.ContextMap()["context_id"].(uint32)
		if !ok {
			continue // the host's own lines (compiles, failures)
		}
		out = append(out, Log{Level: e.Level, Message: e.Message, ContextID: id})
	}
	return out
}

// Load compiles and starts wasm (vm_start and configure); a refused
// configuration fails the test. Use LoadErr to test refusals.
func Load(t testing.TB, wasm []byte, o Options) *Filter {
	t.Helper()
	f, err := LoadErr(t, wasm, o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// LoadBuiltin is Load for a built-in plugin (wasm = "builtin:NAME"), in
// the module sluice serves it from.
func LoadBuiltin(t testing.TB, name string, config any) *Filter {
	t.Helper()
	return Load(t, plugins.RustModule(name), Options{Name: name, RootID: name, Config: config})
}

// LoadErr is Load returning the error instead of failing.
func LoadErr(t testing.TB, wasm []byte, o Options) (*Filter, error) {
	t.Helper()
	ctx := context.Background()
	metrics := hostabi.NewMemoryMetrics()
	shared := o.Shared
	if shared == nil {
		shared = hostabi.NewMemoryStore()
	}
	core, logs := observer.New(zapcore.DebugLevel)
	e, err := hostabi.NewEngine(ctx, hostabi.EngineConfig{HTTP: o.HTTP, Shared: shared, Metrics: metrics, Logger: zap.New(core)})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	cfg, err := raw(o.Config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	vmCfg, err := raw(o.VMConfig)
	if err != nil {
		return nil, fmt.Errorf("vm config: %w", err)
	}
	name := o.Name
	if name == "" {
		name = "test"
	}
	p, err := e.Load(ctx, hostabi.PluginConfig{Name: name, RootID: o.RootID, Wasm: wasm,
		PluginConfig: cfg, VMConfig: vmCfg, Trusted: !o.Untrusted, Instances: 1})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	// A built-in loaded before its compiled code was cached starts on
	// wazero's interpreter: tests and benchmarks measure the compiled code.
	if err := p.WaitCompiled(ctx); err != nil {
		return nil, err
	}
	return &Filter{t: t, Plugin: p, Metrics: metrics, logs: logs}, nil
}

func raw(v any) ([]byte, error) {
	switch c := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return c, nil
	case string:
		return []byte(c), nil
	}
	return json.Marshal(v)
}

// Request is one simulated stream.
type Request struct {
	// Headers include pseudo-headers; :method GET, :path / and :authority
	// example.com are added when missing.
	Headers [][2]string
	// Body, when not nil, is sent as one chunk ending the request.
	Body []byte
	// BodyChunks, when Body is nil, are sent one by one, the last ending
	// the request. A chunk the filter buffers (hostabi.Buffer) is held
	// and given again with the next, as the proxy's filter chain does.
	BodyChunks [][]byte
	// ClientAddr is the source.address property; default 127.0.0.1:40000.
	ClientAddr string
	// Properties the filter may read, keyed by path joined with ".".
	Properties map[string][]byte
	// ResponseHeaders (default :status 200) and ResponseBody are the
	// upstream's answer, used when the filter lets the request through.
	ResponseHeaders [][2]string
	ResponseBody    []byte
	// Wait bounds how long a paused request may take to be resumed (by a
	// tick or an http_call reply); default 2s.
	Wait time.Duration
}

// Result is what the filter did.
type Result struct {
	// RequestHeaders and RequestBody as they would go upstream.
	RequestHeaders [][2]string
	RequestBody    []byte
	// ResponseHeaders and ResponseBody as they would go to the client
	// (nil when the filter answered locally).
	ResponseHeaders [][2]string
	ResponseBody    []byte
	// Local is the filter's local reply, if any.
	Local *hostabi.LocalResponse
	// Properties after the stream, including what the filter set.
	Properties map[string][]byte
	// Paused says the request stayed paused past Request.Wait.
	Paused bool
	// RequestBodyActions are the filter's answers to the request body
	// callbacks, one a chunk.
	RequestBodyActions []hostabi.Action
	// ContextID is the stream's context id in its instance.
	ContextID uint32
	// Resumed are the halves of the stream resumed from outside its own
	// callbacks (a tick, an http_call reply, a queue), in order: the host
	// resumes the filter's effective context, so they are this stream's
	// only when the filter made it effective.
	Resumed []hostabi.StreamType
}

// RequestHeader returns a request header as it went upstream.
func (r *Result) RequestHeader(k string) (string, bool) { return get(r.RequestHeaders, k) }

// ResponseHeader returns a response header as it went to the client.
func (r *Result) ResponseHeader(k string) (string, bool) { return get(r.ResponseHeaders, k) }

// LocalHeader returns a header of the local reply.
func (r *Result) LocalHeader(k string) (string, bool) {
	if r.Local == nil {
		return "", false
	}
	return get(r.Local.Headers, k)
}

func get(h [][2]string, k string) (string, bool) {
	var vs []string
	for _, kv := range h {
		if strings.EqualFold(kv[0], k) {
			vs = append(vs, kv[1])
		}
	}
	return strings.Join(vs, ","), len(vs) > 0
}

// Do runs one stream through the filter.
func (f *Filter) Do(r Request) *Result {
	f.t.Helper()
	res, err := f.do(r)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// Pending is a stream Start runs.
type Pending struct {
	f    *Filter
	done chan struct{}
	res  *Result
	err  error
}

// Start runs r through the filter, as Do does, on a goroutine of its
// own; Wait returns the result.
func (f *Filter) Start(r Request) *Pending {
	p := &Pending{f: f, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.res, p.err = f.do(r)
	}()
	return p
}

// Done says the stream is over (its result is ready).
func (p *Pending) Done() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the stream's end and returns its result.
func (p *Pending) Wait() *Result {
	p.f.t.Helper()
	<-p.done
	if p.err != nil {
		p.f.t.Fatal(p.err)
	}
	return p.res
}

func (f *Filter) do(r Request) (*Result, error) {
	ctx := context.Background()
	st := newStream(r)
	s, err := f.Plugin.NewHTTPStream(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("new stream: %w", err)
	}
	defer func() {
		_ = s.OnDone()
		st.release()
	}()
	res := &Result{ContextID: s.ID()}
	wait := r.Wait
	if wait == 0 {
		wait = 2 * time.Second
	}
	// paused waits for a Resume from the host's goroutine (tick, reply).
	paused := func(a hostabi.Action) bool {
		if a == hostabi.Continue {
			return false
		}
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			if st.resumes.Load() > 0 || st.local.Load() != nil {
				st.resumes.Store(0)
				return st.local.Load() != nil
			}
			time.Sleep(time.Millisecond)
		}
		res.Paused = true
		return true
	}
	chunks := r.BodyChunks
	if r.Body != nil {
		chunks = [][]byte{r.Body}
	}
	a, err := s.OnRequestHeaders(len(chunks) == 0)
	if err != nil {
		return nil, fmt.Errorf("request headers: %w", err)
	}
	stopped := paused(a)
	var held []byte
	for i, c := range chunks {
		if stopped {
			break
		}
		out, a, err := s.OnRequestBody(append(held, c...), i == len(chunks)-1)
		if err != nil {
			return nil, fmt.Errorf("request body: %w", err)
		}
		res.RequestBodyActions = append(res.RequestBodyActions, a)
		held = nil
		if a == hostabi.Buffer && i < len(chunks)-1 {
			held = out
			continue
		}
		res.RequestBody = append(res.RequestBody, out...)
		stopped = paused(a)
	}
	if !stopped {
		rh := r.ResponseHeaders
		if rh == nil {
			rh = [][2]string{{":status", "200"}}
		}
		st.resp = newHeaderMap(rh)
		a, err := s.OnResponseHeaders(r.ResponseBody == nil)
		if err != nil {
			return nil, fmt.Errorf("response headers: %w", err)
		}
		if !paused(a) && r.ResponseBody != nil {
			out, _, err := s.OnResponseBody(r.ResponseBody, true)
			if err != nil {
				return nil, fmt.Errorf("response body: %w", err)
			}
			res.ResponseBody = out
		}
		if st.local.Load() == nil {
			res.ResponseHeaders = pairs(st.resp)
		}
	}
	if err := s.OnLog(); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	res.RequestHeaders = pairs(st.req)
	res.Local = st.local.Load()
	res.Properties = st.propsCopy()
	res.Resumed = st.resumedHalves()
	return res, nil
}

// Metric returns a metric's value by name (counters and gauges; the sum
// for histograms).
func (f *Filter) Metric(name string) (int64, bool) {
	for _, m := range f.Metrics.Snapshot() {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

// Stats are the plugin's host-side statistics (instances, memory, failures).
func (f *Filter) Stats() hostabi.Stats { return f.Plugin.Stats() }

type stream struct {
	// req and resp are the proxy's own header map (runtime/stream), so a
	// benchmark's hostcalls cost what they cost in sluice: no conversion,
	// no allocation once the map has room.
	req, resp *proxystream.HeaderMap
	// props is guarded by mu: the host may set one from a tick's
	// goroutine while Do reads.
	props map[string][]byte
	local atomic.Pointer[hostabi.LocalResponse]
	// resumes counts Resumes not yet seen by a wait; resumed keeps them.
	resumes atomic.Int32
	mu      sync.Mutex
	resumed []hostabi.StreamType
}

func newStream(r Request) *stream {
	h := append([][2]string(nil), r.Headers...)
	for _, d := range [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "example.com"}} {
		if _, ok := get(h, d[0]); !ok {
			h = append([][2]string{d}, h...)
		}
	}
	props := map[string][]byte{}
	for k, v := range r.Properties {
		props[k] = v
	}
	addr := r.ClientAddr
	if addr == "" {
		addr = "127.0.0.1:40000"
	}
	if _, ok := props["source.address"]; !ok {
		props["source.address"] = []byte(addr)
	}
	return &stream{req: newHeaderMap(h), props: props}
}

// maps are the header maps of finished streams, kept for the next ones
// as the proxy keeps its streams' maps: a filter's header edits then
// allocate nothing, as there.
var maps sync.Pool

// newHeaderMap holds h.
func newHeaderMap(h [][2]string) *proxystream.HeaderMap {
	m, _ := maps.Get().(*proxystream.HeaderMap)
	if m == nil {
		m = &proxystream.HeaderMap{}
	}
	for _, kv := range h {
		m.Add(kv[0], kv[1])
	}
	return m
}

// release hands the stream's maps back once the host is done with it.
func (s *stream) release() {
	for _, m := range []*proxystream.HeaderMap{s.req, s.resp} {
		if m != nil {
			m.Reset()
			maps.Put(m)
		}
	}
	s.req, s.resp = nil, nil
}

// pairs is a copy of m's fields.
func pairs(m *proxystream.HeaderMap) [][2]string {
	out := make([][2]string, 0, m.Len())
	for k, v := range m.All() {
		out = append(out, [2]string{string(k), string(v)})
	}
	return out
}

func (s *stream) propsCopy() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.props))
	for k, v := range s.props {
		out[k] = v
	}
	return out
}

func (s *stream) Headers(t hostabi.MapType) hostabi.HeaderMap {
	switch {
	case t == hostabi.RequestHeaders && s.req != nil:
		return s.req
	case t == hostabi.ResponseHeaders && s.resp != nil:
		return s.resp
	}
	return nil
}
func (s *stream) SendLocalResponse(r hostabi.LocalResponse) { s.local.Store(&r) }
func (s *stream) Resume(t hostabi.StreamType) {
	s.mu.Lock()
	s.resumed = append(s.resumed, t)
	s.mu.Unlock()
	s.resumes.Add(1)
}

func (s *stream) resumedHalves() []hostabi.StreamType {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hostabi.StreamType(nil), s.resumed...)
}
func (s *stream) Close(hostabi.StreamType) {}
func (s *stream) Property(path []string) ([]byte, bool) {
	s.mu.Lock()
	v, ok := s.props[strings.Join(path, ".")]
	s.mu.Unlock()
	return v, ok
}

// SetProperty keeps v: the host hands over a copy.
func (s *stream) SetProperty(path []string, v []byte) error {
	s.mu.Lock()
	// The path's segments are views of guest memory: the key is copied
	// (Join returns a one-segment path's segment as it is).
	s.props[strings.Clone(strings.Join(path, "."))] = v
	s.mu.Unlock()
	return nil
}
