package hostabi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A trusted module not compiled yet serves through the interpreter as soon
// as it loads; when the compile is done new streams get compiled
// instances, a stream that started before keeps its instance to the end,
// which then closes; the next engine on the cache finds the compiled code
// (a marker says so) and loads it directly.
func TestTieredCompile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	wasm := rustGuest(t, "hostcalls")
	// Hold the background compile until the interpreter has served.
	e.compileSlot <- struct{}{}
	p, err := e.Load(ctx, PluginConfig{Name: "tiered", Wasm: wasm, Trusted: true, PluginConfig: []byte("get 1")})
	if err != nil {
		<-e.compileSlot
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if got := p.CompileCache(); got != CompileCacheMiss {
		t.Errorf("compile cache %q, want miss", got)
	}
	serve := func(hs *HTTPStream, s *mapStream) {
		t.Helper()
		s.refill()
		if a, err := hs.OnRequestHeaders(false); a != Continue || err != nil {
			t.Fatalf("OnRequestHeaders: %v %v", a, err)
		}
	}
	early := &mapStream{}
	hs1, err := p.NewHTTPStream(ctx, early)
	if err != nil {
		t.Fatal(err)
	}
	serve(hs1, early)
	if !hs1.in.cm.key.interpreted {
		t.Fatal("the first stream does not run on the interpreter")
	}
	select {
	case <-p.vm.compiled:
		t.Fatal("WaitCompiled would return before the compile")
	default:
	}
	<-e.compileSlot
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.WaitCompiled(wctx); err != nil {
		t.Fatal("the VM did not move to compiled code:", err)
	}
	p.vm.mu.Lock()
	upgraded := !p.vm.cm.key.interpreted
	p.vm.mu.Unlock()
	if !upgraded {
		t.Fatal("WaitCompiled returned before the VM moved to compiled code")
	}
	late := &mapStream{}
	hs2, err := p.NewHTTPStream(ctx, late)
	if err != nil {
		t.Fatal(err)
	}
	serve(hs2, late)
	if hs2.in == hs1.in || hs2.in.cm.key.interpreted {
		t.Error("a new stream went to the interpreter's instance")
	}
	serve(hs1, early) // the early stream keeps its instance
	old := hs1.in
	if err := hs1.OnDone(); err != nil {
		t.Fatal(err)
	}
	old.mu.Lock()
	closed := old.mod == nil && errors.Is(old.broken, errRetired)
	old.mu.Unlock()
	if !closed {
		t.Error("the interpreter's instance stayed open after its last stream")
	}
	if err := hs2.OnDone(); err != nil {
		t.Fatal(err)
	}
	if !fileExists(e.compiledMarker(p.vm.key.sum)) {
		t.Fatal("no marker for the compiled module")
	}

	e2, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close(ctx)
	p2, err := e2.Load(ctx, PluginConfig{Name: "tiered", Wasm: wasm, Trusted: true, PluginConfig: []byte("get 1")})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close(ctx)
	if p2.vm.cm.key.interpreted || p2.CompileCache() != CompileCacheHit {
		t.Errorf("second engine: interpreted %v, compile cache %q; want compiled code from the cache",
			p2.vm.cm.key.interpreted, p2.CompileCache())
	}
}

// A plugin closed before its compile is done, and then its engine, leave
// nothing running: Close waits for the compile and lets it go.
func TestTieredCompileClosedEarly(t *testing.T) {
	ctx := context.Background()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	e.compileSlot <- struct{}{}
	p, err := e.Load(ctx, PluginConfig{Name: "early", Wasm: rustGuest(t, "hostcalls"), Trusted: true, PluginConfig: []byte("none 1")})
	if err != nil {
		<-e.compileSlot
		t.Fatal(err)
	}
	if !p.vm.cm.key.interpreted {
		t.Error("with no disk cache a trusted module should start on the interpreter")
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-e.compileSlot
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	left := len(e.modules)
	e.mu.Unlock()
	if left != 0 {
		t.Errorf("%d compiled modules left after close", left)
	}
}

// TestTieredCompileGivesBackItsHeap: the background compile of a trusted
// module (the built-ins, 0.9 MB) leaves tens of MiB of the optimizing
// compiler's garbage; once the plugin runs compiled code, the process
// holds little more Go heap than it still uses.
func TestTieredCompileGivesBackItsHeap(t *testing.T) {
	ctx := context.Background()
	wasm, err := os.ReadFile(filepath.Join("..", "plugins", "rust", "builtins.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(ctx, EngineConfig{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	p, err := e.Load(ctx, PluginConfig{Name: "add-header", RootID: "add-header", Wasm: wasm, Trusted: true,
		PluginConfig: []byte(`{"request_headers":{"x-a":"1"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.WaitCompiled(wctx); err != nil {
		t.Fatal(err)
	}
	var held, live runtime.MemStats
	runtime.ReadMemStats(&held)
	runtime.GC()
	runtime.ReadMemStats(&live)
	kept := held.HeapSys - held.HeapReleased
	t.Logf("Go heap held %.1f MiB, live %.1f MiB", float64(kept)/(1<<20), float64(live.HeapAlloc)/(1<<20))
	// More than the heap's fragmentation (which grows with what earlier
	// tests left live), less than the compile's garbage.
	if kept > live.HeapAlloc+live.HeapAlloc/4+4<<20 {
		t.Errorf("the process holds %.1f MiB of Go heap for %.1f MiB live", float64(kept)/(1<<20), float64(live.HeapAlloc)/(1<<20))
	}
}

// TestEngineMakesTheRuntimesItNeeds: each wazero runtime (with its host
// modules) is made by the first module that needs it. A built-in read
// from the compile cache, and a user's module the deadline rewrite
// accepts, need the plain one only; the interpreter comes with a cold
// built-in.
func TestEngineMakesTheRuntimesItNeeds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	made := func(e *Engine) (rt, fast, interp bool) {
		return e.rt.rt != nil, e.fastRT.rt != nil, e.interpRT.rt != nil
	}
	e, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if rt, fast, interp := made(e); rt || fast || interp {
		t.Errorf("a new engine made runtimes: checked %v, plain %v, interpreter %v", rt, fast, interp)
	}
	wasm := rustGuest(t, "hostcalls")
	p, err := e.Load(ctx, PluginConfig{Name: "cold", Wasm: wasm, Trusted: true, PluginConfig: []byte("none 1")})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.WaitCompiled(wctx); err != nil {
		t.Fatal(err)
	}
	if rt, fast, interp := made(e); rt || !fast || !interp {
		t.Errorf("a cold built-in: checked %v, plain %v, interpreter %v; want the plain one and the interpreter", rt, fast, interp)
	}
	p.Close(ctx)
	e.Close(ctx)

	e2, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close(ctx)
	for _, trusted := range []bool{true, false} {
		p, err := e2.Load(ctx, PluginConfig{Name: fmt.Sprint("trusted-", trusted), Wasm: wasm, Trusted: trusted, PluginConfig: []byte("none 1")})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
	}
	if rt, fast, interp := made(e2); rt || !fast || interp {
		t.Errorf("a cached built-in and a rewritten module: checked %v, plain %v, interpreter %v; want the plain one only", rt, fast, interp)
	}
	// Closed runtimes stay closed: no load makes one after Close.
	e3, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e3.Close(ctx)
	if _, err := e3.Load(ctx, PluginConfig{Name: "late", Wasm: wasm, Trusted: true}); err == nil {
		t.Error("a load after Close succeeded")
	}
	if rt, fast, interp := made(e3); rt || fast || interp {
		t.Errorf("a closed engine made runtimes: checked %v, plain %v, interpreter %v", rt, fast, interp)
	}
}

// warmCache is a compile cache that holds wasm's compiled code (trusted)
// but not the marker that says so: a trusted load from it starts on the
// interpreter, and its background compile, read from the cache, is quick
// whatever the machine's load (the race detector makes a cold compile
// take seconds), so a callout's timeout in a test does not race it.
func warmCache(t *testing.T, wasm []byte) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	cm, err := e.compile(ctx, wasm, true)
	if err != nil {
		t.Fatal(err)
	}
	e.release(ctx, cm)
	return dir
}

// tieredRawabi loads the rawabi guest as a trusted plugin on an engine of
// its own (warmCache), holding the background compile, so that it starts
// on the interpreter; release lets the compile go and waits for
// the VM to move to compiled code. old is the interpreter's instance.
func tieredRawabi(t *testing.T, caller HTTPCaller, script string) (p *Plugin, logs *observer.ObservedLogs, old *instance, release func()) {
	t.Helper()
	ctx := context.Background()
	core, logs := observer.New(zapcore.DebugLevel)
	e, err := NewEngine(ctx, EngineConfig{CacheDir: warmCache(t, testGuests["rawabi"]), HTTP: caller, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	e.compileSlot <- struct{}{}
	p, err = e.Load(ctx, PluginConfig{Name: "retiring", Wasm: testGuests["rawabi"], Trusted: true, Instances: 1,
		CallTimeout: 10 * time.Second, PluginConfig: []byte(script)})
	if err != nil {
		<-e.compileSlot
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	p.vm.mu.Lock()
	old = p.vm.insts[0]
	p.vm.mu.Unlock()
	if !old.cm.key.interpreted {
		<-e.compileSlot
		t.Fatal("the plugin did not start on the interpreter")
	}
	return p, logs, old, func() {
		t.Helper()
		<-e.compileSlot
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := p.WaitCompiled(wctx); err != nil {
			t.Fatal("the VM did not move to compiled code:", err)
		}
	}
}

// instanceState is whether an instance is open, closed as retired, and
// whether any of its root contexts has a timer running.
func instanceState(in *instance) (open, retiredClosed, ticking bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, rc := range in.roots {
		ticking = ticking || rc.tickStop != nil
	}
	return in.mod != nil, in.mod == nil && errors.Is(in.broken, errRetired), ticking
}

// retire lets the compile go and checks that the interpreter's instance,
// retired, is still open, for what holds it, and ticks no more.
func retire(t *testing.T, old *instance, release func(), holder string) {
	t.Helper()
	release()
	open, _, ticking := instanceState(old)
	if !open {
		t.Fatal("the retired instance was closed " + holder)
	}
	if ticking {
		t.Error("the retired instance's root context still ticks beside the compiled one's")
	}
}

func waitRetiredClosed(t *testing.T, in *instance, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, closed, _ := instanceState(in); closed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retired instance is still open after %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A root context's http_call (a JWKS fetch at configure time, holding a
// lease the other instances wait on) outlives the move to compiled code:
// the interpreter's instance, retired with the call in flight, stays open,
// gets the answer in on_http_call_response and closes then. Its timer
// stops when it retires (before, a retired instance with work left went
// on ticking beside the compiled one), the guest asking for it again
// from the answer's callback starts none, and a new http_call from there
// is refused.
func TestTieredRetiredInstanceGetsItsCallouts(t *testing.T) {
	answer := make(chan struct{})
	answerNow := sync.OnceFunc(func() { close(answer) })
	asked := make(chan struct{}, 1)
	var n atomic.Int32
	cluster := "idp-" + t.Name()
	testCaller.addCluster(t, cluster, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			fmt.Fprint(w, "later") // the compiled instance's own fetch
			return
		}
		asked <- struct{}{}
		select {
		case <-answer:
			fmt.Fprint(w, "first")
		case <-r.Context().Done():
		}
	}))
	p, logs, old, release := tieredRawabi(t, testCaller, fmt.Sprintf(
		"configure: tick 5 | http_call %s :method=GET,:path=/jwks,:authority=idp - 60000\n"+
			"http_call_response: buf_get 4 0 100 | tick 5 | http_call nowhere :method=GET,:path=/,:authority=a - 100\n", cluster))
	t.Cleanup(answerNow) // first: the upstream's handler ends before its server
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the interpreter's root context made no http_call")
	}
	if _, _, ticking := instanceState(old); !ticking {
		t.Fatal("the interpreter's root context has no timer: the test cannot show it stops")
	}
	retire(t, old, release, "with its root context's http_call in flight")
	hs, err := p.NewHTTPStream(context.Background(), &mapStream{})
	if err != nil {
		t.Fatal(err)
	}
	if hs.in == old {
		t.Error("a new stream went to the retired instance")
	}
	hs.OnDone()
	answerNow()
	waitRetiredClosed(t, old, 10*time.Second)
	if got := logs.FilterMessage("http_call_response buf_get: status=0 first").Len(); got != 1 {
		t.Errorf("the retired root context got the answer %d times, want 1; logs:\n%v", got, messages(logs))
	}
	// A retired root context starts no new callout (InternalFailure);
	// the compiled instance's is refused for its unknown cluster only.
	if got := logs.FilterMessage("http_call_response http_call: status=10 id=0").Len(); got != 1 {
		t.Errorf("the retired root context's new http_call was refused %d times, want 1; logs:\n%v", got, messages(logs))
	}
}

// An answer that never comes keeps a retired instance open only until the
// callout's own timeout and calloutGrace have passed. The call here is a
// stream's, made after the instance retired (so the compile's time does
// not eat into its bound), and the stream ends before the answer; the
// caller ignores the timeout and answers only when its connection ends,
// after the test: that late answer finds the instance closed.
func TestTieredRetiredInstanceCalloutBound(t *testing.T) {
	caller := newMutedCaller(t)
	const timeout = 2 * time.Second
	p, _, old, release := tieredRawabi(t, caller, fmt.Sprintf(
		"request_headers: http_call silent :method=GET,:path=/,:authority=a - %d | ret 1\n", timeout.Milliseconds()))
	hs, err := p.NewHTTPStream(context.Background(), newTestStream())
	if err != nil {
		t.Fatal(err)
	}
	retire(t, old, release, "under its stream")
	if a, err := hs.OnRequestHeaders(true); a != Pause || err != nil {
		t.Fatalf("OnRequestHeaders: %v %v", a, err)
	}
	if caller.calls() != 1 {
		t.Fatalf("the retired instance's stream made %d http_calls, want 1", caller.calls())
	}
	if err := hs.OnDone(); err != nil {
		t.Fatal(err)
	}
	if open, _, _ := instanceState(old); !open {
		t.Fatal("the retired instance was closed with an http_call in flight")
	}
	waitRetiredClosed(t, old, timeout+calloutGrace+10*time.Second)
}

// A plugin closed while its retired instance waits for a callout closes
// that instance with the rest: the answer is for no one now.
func TestTieredRetiredInstanceClosesWithPlugin(t *testing.T) {
	caller := newMutedCaller(t)
	p, _, old, release := tieredRawabi(t, caller,
		"configure: http_call silent :method=GET,:path=/,:authority=a - 100000\n")
	retire(t, old, release, "with its root context's http_call in flight")
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, closed, _ := instanceState(old); !closed {
		t.Error("the retired instance outlived its plugin")
	}
}

// mutedCaller sends each http_call's request line to addr over its own
// connection and answers (with an error) only when that connection ends:
// a caller that does not enforce the call's timeout.
type mutedCaller struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// newMutedCaller's upstream is a listener whose connections the kernel
// accepts and nobody reads; the test's end closes them, which answers
// the calls.
func newMutedCaller(t *testing.T) *mutedCaller {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &mutedCaller{addr: ln.Addr().String()}
	t.Cleanup(func() {
		c.closeAll()
		c.wg.Wait()
		ln.Close()
	})
	return c
}

func (c *mutedCaller) HTTPCall(ctx context.Context, req HTTPCallRequest, done func(HTTPCallResponse, error)) error {
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		_, err := io.Copy(io.Discard, conn)
		done(HTTPCallResponse{}, fmt.Errorf("connection ended: %v", err))
	}()
	return nil
}

func (c *mutedCaller) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

func (c *mutedCaller) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Message)
	}
	return out
}

// A retired instance that a stream still holds serves that stream to its
// end but ticks no more: before, its root context's timer went on beside
// the compiled instance's, two generations doing the same periodic work.
func TestTieredRetiredInstanceStopsTicking(t *testing.T) {
	p, logs, old, release := tieredRawabi(t, testCaller, "configure: tick 5\ntick: log 2 tick\n")
	hs, err := p.NewHTTPStream(context.Background(), &mapStream{})
	if err != nil {
		t.Fatal(err)
	}
	if hs.in != old {
		t.Fatal("the stream did not go to the interpreter's instance")
	}
	for deadline := time.Now().Add(10 * time.Second); logs.FilterMessage("tick").Len() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the interpreter's root context does not tick: the test cannot show it stops")
		}
	}
	retire(t, old, release, "under its stream")
	if err := hs.OnDone(); err != nil {
		t.Fatal(err)
	}
	waitRetiredClosed(t, old, 10*time.Second)
}

// The jwt built-in, cold: its first root context, on the interpreter,
// fetches the JWKS at configure time from a slow IdP and holds the lease
// the other root contexts wait on; the compiled code arrives before the
// answer. The answer still reaches that root context, which shares the
// keys: a request right after the cold start, on the compiled instance,
// passes with them, and the IdP saw one fetch. Before, the retired
// instance closed under the fetch and the compiled one fetched again.
func TestTieredJWTColdStartFetchesOnce(t *testing.T) {
	wasm, err := os.ReadFile(filepath.Join("..", "plugins", "rust", "builtins.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"alice"}`))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	token := input + "." + b64(mac.Sum(nil))
	var fetches atomic.Int32
	asked := make(chan struct{}, 1)
	answer := make(chan struct{})
	answerNow := sync.OnceFunc(func() { close(answer) })
	cluster := "idp-" + t.Name()
	testCaller.addCluster(t, cluster, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		select {
		case asked <- struct{}{}:
		default:
		}
		select { // a slow IdP: it answers when the test says so
		case <-answer:
			fmt.Fprintf(w, `{"keys":[{"kty":"oct","kid":"k1","k":"%s"}]}`, b64(secret))
		case <-r.Context().Done():
		}
	}))
	ctx := context.Background()
	e, err := NewEngine(ctx, EngineConfig{CacheDir: warmCache(t, wasm), HTTP: testCaller})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	e.compileSlot <- struct{}{}
	p, err := e.Load(ctx, PluginConfig{Name: "jwt", RootID: "jwt", Wasm: wasm, Trusted: true, Instances: 1,
		PluginConfig: []byte(fmt.Sprintf(`{"jwks_uri":"https://id.example.com/jwks.json","jwks_cluster":%q}`, cluster))})
	if err != nil {
		<-e.compileSlot
		t.Fatal(err)
	}
	defer p.Close(ctx)
	defer answerNow()
	if !p.vm.cm.key.interpreted {
		<-e.compileSlot
		t.Fatal("the plugin did not start on the interpreter")
	}
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		<-e.compileSlot
		t.Fatal("no JWKS fetch at configure time")
	}
	<-e.compileSlot
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.WaitCompiled(wctx); err != nil {
		t.Fatal(err)
	}
	answerNow()
	s := newTestStream("authorization", "Bearer "+token)
	hs, err := p.NewHTTPStream(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.OnDone()
	if hs.in.cm.key.interpreted {
		t.Fatal("the request went to the interpreter's instance")
	}
	a, err := hs.OnRequestHeaders(true)
	if err != nil {
		t.Fatal(err)
	}
	resumed := a == Continue
	if a == Pause { // waiting for the keys
		select {
		case <-s.resumed:
			resumed = true
		case <-time.After(10 * time.Second):
		}
	}
	s.mu.Lock()
	local := s.local
	s.mu.Unlock()
	if len(local) != 0 {
		t.Fatalf("a valid token refused right after the cold start: %d %s", local[0].Status, local[0].Body)
	}
	if !resumed {
		t.Fatalf("the request neither passed nor was refused (action %v)", a)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the IdP saw %d JWKS fetches for one cold start, want 1", n)
	}
}
