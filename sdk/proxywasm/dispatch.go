package proxywasm

import (
	"github.com/sluice-proxy/sluice/sdk/internal/abi"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// The methods below are the bodies of the proxy_on_* exports (exports_wasip1.go
// is only glue), kept here so they run and are tested natively.

func (s *vmState) onVMStart(vmConfigSize uint32) bool {
	s.active = 0
	return bool(s.vm.OnVMStart(int(vmConfigSize)))
}

func (s *vmState) onContextCreate(contextID, parentID uint32) {
	s.active = contextID
	if parentID == 0 {
		ctx := s.vm.NewPluginContext(contextID)
		if ctx == nil {
			ctx = &unknownRoot{known: "(the VM context made none)"}
		}
		s.roots[contextID] = &rootState{ctx: ctx, callouts: make(map[uint32]callout), grpc: make(map[uint32]grpcCall)}
		return
	}
	if _, ok := s.roots[parentID]; !ok {
		LogCriticalf("context %d created under unknown plugin context %d", contextID, parentID)
		return
	}
	// proxy_on_context_create does not say whether the stream is HTTP or
	// TCP, so the stream context is made by the first callback that does
	// (see http and tcp): a plugin may then serve both kinds.
	s.streamRoot[contextID] = parentID
}

func (s *vmState) onConfigure(rootID, size uint32) bool {
	s.active = rootID
	root, ok := s.roots[rootID]
	if !ok {
		return false
	}
	return bool(root.ctx.OnPluginStart(int(size)))
}

func (s *vmState) onDone(contextID uint32) bool {
	s.active = contextID
	if root, ok := s.roots[contextID]; ok {
		return root.ctx.OnPluginDone()
	}
	return true
}

func (s *vmState) onLog(contextID uint32) {
	s.active = contextID
	if h, ok := s.httpStreams[contextID]; ok {
		h.OnHttpStreamDone()
	} else if t, ok := s.tcpStreams[contextID]; ok {
		t.OnStreamDone()
	}
}

// onDelete forgets the context, so a long-running instance holds state only
// for live streams.
func (s *vmState) onDelete(contextID uint32) {
	delete(s.httpStreams, contextID)
	delete(s.tcpStreams, contextID)
	delete(s.streamRoot, contextID)
	delete(s.roots, contextID)
	releaseHeld()
	yieldToGC()
}

func (s *vmState) onTick(rootID uint32) {
	s.active = rootID
	if root, ok := s.roots[rootID]; ok {
		root.ctx.OnTick()
	}
}

func (s *vmState) onQueueReady(rootID, queueID uint32) {
	s.active = rootID
	if root, ok := s.roots[rootID]; ok {
		root.ctx.OnQueueReady(queueID)
	}
}

func (s *vmState) onHTTPCallResponse(rootID, calloutID, numHeaders, bodySize, numTrailers uint32) {
	root, ok := s.roots[rootID]
	if !ok {
		return
	}
	c, ok := root.callouts[calloutID]
	if !ok {
		return
	}
	delete(root.callouts, calloutID)
	s.actAs(rootID, c.caller)
	c.cb(int(numHeaders), int(bodySize), int(numTrailers))
}

// actAs makes the stream that started a call the active (and the host's
// effective) context, since a reply usually resumes that stream; if the
// stream is gone, the root context stays in charge.
func (s *vmState) actAs(rootID, caller uint32) {
	s.active = rootID
	if caller == rootID {
		return
	}
	if _, live := s.streamRoot[caller]; live {
		s.active = caller
		abi.ProxySetEffectiveContext(caller)
	}
}

func (s *vmState) http(contextID uint32) types.HttpContext {
	s.active = contextID
	if h, ok := s.httpStreams[contextID]; ok {
		return h
	}
	root, ok := s.pendingRoot(contextID)
	if !ok {
		return nil
	}
	h := root.ctx.NewHttpContext(contextID)
	if h != nil {
		s.httpStreams[contextID] = h
	}
	return h
}

func (s *vmState) tcp(contextID uint32) types.TcpContext {
	s.active = contextID
	if t, ok := s.tcpStreams[contextID]; ok {
		return t
	}
	root, ok := s.pendingRoot(contextID)
	if !ok {
		return nil
	}
	t := root.ctx.NewTcpContext(contextID)
	if t != nil {
		s.tcpStreams[contextID] = t
	}
	return t
}

// pendingRoot is the plugin context of a stream whose context has not been
// made yet.
func (s *vmState) pendingRoot(contextID uint32) (*rootState, bool) {
	if _, isHTTP := s.httpStreams[contextID]; isHTTP {
		return nil, false
	}
	if _, isTCP := s.tcpStreams[contextID]; isTCP {
		return nil, false
	}
	r, ok := s.roots[s.streamRoot[contextID]]
	return r, ok
}

func (s *vmState) onRequestHeaders(id, n uint32, eos bool) types.Action {
	if h := s.http(id); h != nil {
		return h.OnHttpRequestHeaders(int(n), eos)
	}
	return types.ActionContinue
}

func (s *vmState) onRequestBody(id, n uint32, eos bool) types.Action {
	if h := s.http(id); h != nil {
		return h.OnHttpRequestBody(int(n), eos)
	}
	return types.ActionContinue
}

func (s *vmState) onRequestTrailers(id, n uint32) types.Action {
	if h := s.http(id); h != nil {
		return h.OnHttpRequestTrailers(int(n))
	}
	return types.ActionContinue
}

func (s *vmState) onResponseHeaders(id, n uint32, eos bool) types.Action {
	if h := s.http(id); h != nil {
		return h.OnHttpResponseHeaders(int(n), eos)
	}
	return types.ActionContinue
}

func (s *vmState) onResponseBody(id, n uint32, eos bool) types.Action {
	if h := s.http(id); h != nil {
		return h.OnHttpResponseBody(int(n), eos)
	}
	return types.ActionContinue
}

func (s *vmState) onResponseTrailers(id, n uint32) types.Action {
	if h := s.http(id); h != nil {
		return h.OnHttpResponseTrailers(int(n))
	}
	return types.ActionContinue
}

func (s *vmState) onNewConnection(id uint32) types.Action {
	if t := s.tcp(id); t != nil {
		return t.OnNewConnection()
	}
	return types.ActionContinue
}

func (s *vmState) onDownstreamData(id, n uint32, eos bool) types.Action {
	if t := s.tcp(id); t != nil {
		return t.OnDownstreamData(int(n), eos)
	}
	return types.ActionContinue
}

func (s *vmState) onUpstreamData(id, n uint32, eos bool) types.Action {
	if t := s.tcp(id); t != nil {
		return t.OnUpstreamData(int(n), eos)
	}
	return types.ActionContinue
}

func (s *vmState) onDownstreamClose(id, peer uint32) {
	if t := s.tcp(id); t != nil {
		t.OnDownstreamClose(types.PeerType(peer))
	}
}

func (s *vmState) onUpstreamClose(id, peer uint32) {
	if t := s.tcp(id); t != nil {
		t.OnUpstreamClose(types.PeerType(peer))
	}
}
