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
	root, ok := s.roots[parentID]
	if !ok {
		LogCritical("context " + decimal(contextID) + " created under unknown plugin context " + decimal(parentID))
		return
	}
	// proxy_on_context_create does not say whether the stream is HTTP or
	// TCP, so the stream context is made by the first callback that does
	// (see http and tcp): a plugin may then serve both kinds.
	st := &streamState{rootID: parentID, root: root}
	s.streams[contextID] = st
	s.lastID, s.last = contextID, st
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
	if s.stream(contextID) != nil {
		return true
	}
	if root, ok := s.roots[contextID]; ok {
		return root.ctx.OnPluginDone()
	}
	return true
}

func (s *vmState) onLog(contextID uint32) {
	s.active = contextID
	if st := s.stream(contextID); st != nil {
		if st.http != nil {
			st.http.OnHttpStreamDone()
			st.root.learn()
		} else if st.tcp != nil {
			st.tcp.OnStreamDone()
		}
	}
}

// onDelete forgets the context, so a long-running instance holds state only
// for live streams.
func (s *vmState) onDelete(contextID uint32) {
	if st := s.stream(contextID); st != nil {
		st.root.flush()
		delete(s.streams, contextID)
		s.last = nil
	} else {
		delete(s.roots, contextID)
	}
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
	if s.stream(caller) != nil {
		s.active = caller
		abi.ProxySetEffectiveContext(caller)
	}
}

// httpStream returns the stream's HTTP context, made by its plugin on the
// first call, and the stream.
func (s *vmState) httpStream(contextID uint32) (types.HttpContext, *streamState) {
	s.active = contextID
	st := s.stream(contextID)
	if st == nil {
		return nil, nil
	}
	if st.http == nil && st.tcp == nil {
		st.http = st.root.ctx.NewHttpContext(contextID)
		if skipDefaults && st.http != nil {
			st.root.sameType(typeWord(st.http))
		}
	}
	return st.http, st
}

func (s *vmState) tcp(contextID uint32) types.TcpContext {
	s.active = contextID
	st := s.stream(contextID)
	if st == nil {
		return nil
	}
	if st.http == nil && st.tcp == nil {
		st.tcp = st.root.ctx.NewTcpContext(contextID)
	}
	return st.tcp
}

func (s *vmState) onRequestHeaders(id, n uint32, eos bool) types.Action {
	if h, st := s.httpStream(id); h != nil {
		a := h.OnHttpRequestHeaders(int(n), eos)
		st.root.learn()
		return a
	}
	return types.ActionContinue
}

func (s *vmState) onRequestBody(id, n uint32, eos bool) types.Action {
	if h, st := s.httpStream(id); h != nil {
		a := h.OnHttpRequestBody(int(n), eos)
		st.root.learn()
		return a
	}
	return types.ActionContinue
}

func (s *vmState) onRequestTrailers(id, n uint32) types.Action {
	if h, st := s.httpStream(id); h != nil {
		a := h.OnHttpRequestTrailers(int(n))
		st.root.learn()
		return a
	}
	return types.ActionContinue
}

func (s *vmState) onResponseHeaders(id, n uint32, eos bool) types.Action {
	if h, st := s.httpStream(id); h != nil {
		a := h.OnHttpResponseHeaders(int(n), eos)
		st.root.learn()
		return a
	}
	return types.ActionContinue
}

func (s *vmState) onResponseBody(id, n uint32, eos bool) types.Action {
	if h, st := s.httpStream(id); h != nil {
		a := h.OnHttpResponseBody(int(n), eos)
		st.root.learn()
		return a
	}
	return types.ActionContinue
}

func (s *vmState) onResponseTrailers(id, n uint32) types.Action {
	if h, st := s.httpStream(id); h != nil {
		a := h.OnHttpResponseTrailers(int(n))
		st.root.learn()
		return a
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
