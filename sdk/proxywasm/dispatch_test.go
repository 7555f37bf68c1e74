package proxywasm

import (
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

type testPlugin struct {
	types.DefaultPluginContext
	name    string
	started int
	streams int
}

func (p *testPlugin) OnPluginStart(int) types.OnPluginStartStatus {
	p.started++
	return types.OnPluginStartStatusOK
}

func (p *testPlugin) NewHttpContext(uint32) types.HttpContext {
	p.streams++
	return &testStream{p: p}
}

type testStream struct {
	types.DefaultHttpContext
	p    *testPlugin
	done bool
}

func (s *testStream) OnHttpRequestHeaders(int, bool) types.Action { return types.ActionPause }
func (s *testStream) OnHttpStreamDone()                           { s.done = true }

// withState gives a test its own SDK state and puts the previous one back.
func withState(t *testing.T) *vmState {
	t.Helper()
	old := current
	current = newState()
	t.Cleanup(func() { current = old })
	return current
}

func TestRegistryPicksPluginByRootID(t *testing.T) {
	tests := []struct {
		rootID   string
		withDef  bool
		wantName string
		wantOK   bool
	}{
		{rootID: "a", wantName: "a", wantOK: true},
		{rootID: "b", wantName: "b", wantOK: true},
		{rootID: "zzz", withDef: true, wantName: "default", wantOK: true},
		{rootID: "zzz", wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.rootID, func(t *testing.T) {
			s := withState(t)
			for _, n := range []string{"a", "b"} {
				n := n
				RegisterPlugin(n, func(uint32) types.PluginContext { return &testPlugin{name: n} })
			}
			if tc.withDef {
				SetPluginContext(func(uint32) types.PluginContext { return &testPlugin{name: "default"} })
			}
			s.vm.(*registry).rootID = func() (string, error) { return tc.rootID, nil }
			s.onContextCreate(1, 0)
			ok := s.onConfigure(1, 0)
			if ok != tc.wantOK {
				t.Fatalf("onConfigure = %v, want %v", ok, tc.wantOK)
			}
			if !tc.wantOK {
				return
			}
			p, isTest := s.roots[1].ctx.(*testPlugin)
			if !isTest || p.name != tc.wantName || p.started != 1 {
				t.Fatalf("root context = %#v, want plugin %q started once", s.roots[1].ctx, tc.wantName)
			}
		})
	}
}

// A long-running instance must hold state only for live streams.
func TestStreamStateFreedOnDelete(t *testing.T) {
	s := withState(t)
	p := &testPlugin{}
	SetPluginContext(func(uint32) types.PluginContext { return p })
	s.onContextCreate(1, 0)
	var last *testStream
	for id := uint32(2); id < 100_002; id++ {
		s.onContextCreate(id, 1)
		if got := s.onRequestHeaders(id, 3, false); got != types.ActionPause {
			t.Fatalf("stream %d: onRequestHeaders = %v, want pause", id, got)
		}
		last = s.streams[id].http.(*testStream)
		s.onLog(id)
		if !s.onDone(id) {
			t.Fatalf("onDone(%d) = false for a stream", id)
		}
		s.onDelete(id)
	}
	if !last.done {
		t.Error("OnHttpStreamDone was not called from on_log")
	}
	if p.streams != 100_000 {
		t.Errorf("streams made = %d, want 100000", p.streams)
	}
	if n := len(s.streams); n != 0 {
		t.Errorf("%d stream entries left after delete", n)
	}
	if len(s.roots) != 1 {
		t.Errorf("roots = %d, want 1", len(s.roots))
	}
	s.onDelete(1)
	if len(s.roots) != 0 {
		t.Errorf("root context survived its delete")
	}
}

func TestUnknownContextsAreIgnored(t *testing.T) {
	s := withState(t)
	// Callbacks for contexts the SDK never saw must not panic: the host
	// may deliver them after a failed create.
	if got := s.onRequestHeaders(42, 1, true); got != types.ActionContinue {
		t.Errorf("onRequestHeaders on unknown ctx = %v, want continue", got)
	}
	if s.onConfigure(7, 0) {
		t.Error("onConfigure on unknown root = true, want false")
	}
	s.onContextCreate(9, 8) // parent unknown
	if len(s.streams) != 0 {
		t.Error("stream created under unknown parent")
	}
	s.onTick(3)
	s.onQueueReady(3, 1)
	s.onHTTPCallResponse(3, 1, 0, 0, 0)
}

func TestHTTPCallResponseRunsCallbackOnce(t *testing.T) {
	s := withState(t)
	SetPluginContext(func(uint32) types.PluginContext { return &testPlugin{} })
	s.onContextCreate(1, 0)
	s.onContextCreate(2, 1)
	calls := 0
	var gotHeaders, gotBody int
	s.roots[1].callouts[77] = callout{caller: 2, cb: func(h, b, _ int) {
		calls++
		gotHeaders, gotBody = h, b
		if s.active != 2 {
			t.Errorf("callback ran as context %d, want the caller 2", s.active)
		}
	}}
	s.onHTTPCallResponse(1, 77, 3, 10, 0)
	s.onHTTPCallResponse(1, 77, 3, 10, 0)
	if calls != 1 || gotHeaders != 3 || gotBody != 10 {
		t.Errorf("calls=%d headers=%d body=%d, want 1, 3, 10", calls, gotHeaders, gotBody)
	}
	if len(s.roots[1].callouts) != 0 {
		t.Error("callout not forgotten after its reply")
	}
	// The caller is gone: the callback runs as the root context.
	s.roots[1].callouts[78] = callout{caller: 2, cb: func(int, int, int) {
		if s.active != 1 {
			t.Errorf("callback for a deleted stream ran as %d, want root 1", s.active)
		}
	}}
	s.onDelete(2)
	s.onHTTPCallResponse(1, 78, 0, 0, 0)
}

func TestAllocateHoldsUntilRelease(t *testing.T) {
	withState(t)
	releaseHeld()
	p := allocate(0)
	if p == nil {
		t.Fatal("allocate(0) returned nil, which the host reads as failure")
	}
	allocate(16)
	if len(held) != 2 {
		t.Fatalf("held = %d buffers, want 2", len(held))
	}
	if b := hostBytes(nil, 0); b != nil {
		t.Errorf("hostBytes(nil) = %v", b)
	}
	if len(held) != 0 {
		t.Errorf("held = %d after a hostcall returned, want 0", len(held))
	}
}

func TestGrpcEventsReachCallbacksUntilClose(t *testing.T) {
	s := withState(t)
	SetPluginContext(func(uint32) types.PluginContext { return &testPlugin{} })
	s.onContextCreate(1, 0)
	s.onContextCreate(2, 1)
	var events []string
	s.roots[1].grpc[5] = grpcCall{caller: 2, cb: GrpcCallbacks{
		OnInitialMetadata:  func(n int) { events = append(events, "md") },
		OnMessage:          func(n int) { events = append(events, "msg") },
		OnTrailingMetadata: func(n int) { events = append(events, "trailers") },
		OnClose: func(st uint32) {
			events = append(events, "close")
			if st != 14 || s.active != 2 {
				t.Errorf("close status %d as context %d, want 14 as 2", st, s.active)
			}
		},
	}}
	s.onGrpcInitialMetadata(1, 5, 1)
	s.onGrpcReceive(1, 5, 10)
	s.onGrpcReceive(1, 5, 10)
	s.onGrpcTrailingMetadata(1, 5, 1)
	s.onGrpcClose(1, 5, 14)
	s.onGrpcReceive(1, 5, 10) // after close: ignored
	if got := strings.Join(events, ","); got != "md,msg,msg,trailers,close" {
		t.Errorf("events = %s", got)
	}
	if len(s.roots[1].grpc) != 0 {
		t.Error("call not forgotten after close")
	}
	// Nil callbacks are allowed.
	s.roots[1].grpc[6] = grpcCall{caller: 1}
	s.onGrpcReceive(1, 6, 1)
	s.onGrpcClose(1, 6, 0)
}

type bothPlugin struct {
	types.DefaultPluginContext
	made []string
}

func (p *bothPlugin) NewHttpContext(uint32) types.HttpContext {
	p.made = append(p.made, "http")
	return &types.DefaultHttpContext{}
}

func (p *bothPlugin) NewTcpContext(uint32) types.TcpContext {
	p.made = append(p.made, "tcp")
	return &types.DefaultTcpContext{}
}

// A plugin serving both HTTP and TCP gets the kind of context its first
// stream callback asks for.
func TestStreamKindChosenByFirstCallback(t *testing.T) {
	s := withState(t)
	p := &bothPlugin{}
	SetPluginContext(func(uint32) types.PluginContext { return p })
	s.onContextCreate(1, 0)
	s.onContextCreate(2, 1)
	s.onContextCreate(3, 1)
	s.onNewConnection(2)
	s.onDownstreamData(2, 10, false)
	s.onRequestHeaders(3, 4, true)
	s.onResponseHeaders(3, 4, true)
	if got := strings.Join(p.made, ","); got != "tcp,http" {
		t.Errorf("contexts made = %s, want tcp,http", got)
	}
	if s.streams[2].tcp == nil {
		t.Error("stream 2 is not TCP")
	}
	if s.streams[3].http == nil {
		t.Error("stream 3 is not HTTP")
	}
	// Once made, a stream keeps its kind: an HTTP callback on a TCP stream
	// makes nothing.
	s.onRequestHeaders(2, 1, true)
	if len(p.made) != 2 {
		t.Errorf("contexts made = %v after a stray callback", p.made)
	}
}
