package types

import "github.com/sluice-proxy/sluice/sdk/internal/defaults"

// VMContext is the whole module: one per Wasm VM instance. Most filters never
// implement it; proxywasm.SetPluginContext and proxywasm.RegisterPlugin
// provide one.
type VMContext interface {
	// OnVMStart runs once, before any plugin context; the VM configuration
	// is read with proxywasm.GetVMConfiguration.
	OnVMStart(vmConfigurationSize int) OnVMStartStatus
	// NewPluginContext makes the root context of one plugin. The plugin's
	// root_id is available as proxywasm.GetPluginRootID.
	NewPluginContext(contextID uint32) PluginContext
}

// PluginContext (Envoy's root context) is one configured plugin: it reads its
// configuration, owns ticks, queues and http_call replies, and makes a
// stream context per request or connection.
type PluginContext interface {
	// OnPluginStart receives the configuration (proxywasm.GetPluginConfiguration).
	OnPluginStart(pluginConfigurationSize int) OnPluginStartStatus
	// OnPluginDone is asked when the host wants to stop the plugin; return
	// false to finish outstanding work and call proxywasm.PluginDone later.
	OnPluginDone() bool
	// OnQueueReady runs when an item arrives on a queue this plugin registered.
	OnQueueReady(queueID uint32)
	// OnTick runs every period set by proxywasm.SetTickPeriodMilliSeconds.
	OnTick()
	// NewHttpContext makes the context of one HTTP stream, or nil if the
	// plugin is not an HTTP filter.
	NewHttpContext(contextID uint32) HttpContext
	// NewTcpContext makes the context of one TCP connection, or nil.
	NewTcpContext(contextID uint32) TcpContext
}

// HttpContext is one HTTP stream. Callbacks come in order: request headers,
// body chunks, trailers; then the response the same way; then
// OnHttpStreamDone.
type HttpContext interface {
	OnHttpRequestHeaders(numHeaders int, endOfStream bool) Action
	OnHttpRequestBody(bodySize int, endOfStream bool) Action
	OnHttpRequestTrailers(numTrailers int) Action
	OnHttpResponseHeaders(numHeaders int, endOfStream bool) Action
	OnHttpResponseBody(bodySize int, endOfStream bool) Action
	OnHttpResponseTrailers(numTrailers int) Action
	// OnHttpStreamDone runs once the stream is complete (the host's
	// on_log), the last moment properties such as response.code are readable.
	OnHttpStreamDone()
}

// TcpContext is one TCP connection through a network filter.
type TcpContext interface {
	OnNewConnection() Action
	OnDownstreamData(dataSize int, endOfStream bool) Action
	OnDownstreamClose(peerType PeerType)
	OnUpstreamData(dataSize int, endOfStream bool) Action
	OnUpstreamClose(peerType PeerType)
	OnStreamDone()
}

// DefaultVMContext is a no-op VMContext to embed.
type DefaultVMContext struct{}

func (*DefaultVMContext) OnVMStart(int) OnVMStartStatus         { return OnVMStartStatusOK }
func (*DefaultVMContext) NewPluginContext(uint32) PluginContext { return &DefaultPluginContext{} }

// DefaultPluginContext is a no-op PluginContext to embed.
type DefaultPluginContext struct{}

func (*DefaultPluginContext) OnPluginStart(int) OnPluginStartStatus { return OnPluginStartStatusOK }
func (*DefaultPluginContext) OnPluginDone() bool                    { return true }
func (*DefaultPluginContext) OnQueueReady(uint32)                   {}
func (*DefaultPluginContext) OnTick()                               {}
func (*DefaultPluginContext) NewHttpContext(uint32) HttpContext     { return nil }
func (*DefaultPluginContext) NewTcpContext(uint32) TcpContext       { return nil }

// DefaultHttpContext is a no-op HttpContext to embed.
type DefaultHttpContext struct{}

// Each method notes that it ran (see proxywasm.SkipDefaultCallbacks).
func (*DefaultHttpContext) OnHttpRequestHeaders(int, bool) Action {
	return ran(defaults.RequestHeaders)
}
func (*DefaultHttpContext) OnHttpRequestBody(int, bool) Action { return ran(defaults.RequestBody) }
func (*DefaultHttpContext) OnHttpRequestTrailers(int) Action {
	return ran(defaults.RequestTrailers)
}
func (*DefaultHttpContext) OnHttpResponseHeaders(int, bool) Action {
	return ran(defaults.ResponseHeaders)
}
func (*DefaultHttpContext) OnHttpResponseBody(int, bool) Action {
	return ran(defaults.ResponseBody)
}
func (*DefaultHttpContext) OnHttpResponseTrailers(int) Action {
	return ran(defaults.ResponseTrailers)
}
func (*DefaultHttpContext) OnHttpStreamDone() { defaults.Ran |= defaults.StreamDone }

func ran(bit uint32) Action {
	defaults.Ran |= bit
	return ActionContinue
}

// DefaultTcpContext is a no-op TcpContext to embed.
type DefaultTcpContext struct{}

func (*DefaultTcpContext) OnNewConnection() Action           { return ActionContinue }
func (*DefaultTcpContext) OnDownstreamData(int, bool) Action { return ActionContinue }
func (*DefaultTcpContext) OnDownstreamClose(PeerType)        {}
func (*DefaultTcpContext) OnUpstreamData(int, bool) Action   { return ActionContinue }
func (*DefaultTcpContext) OnUpstreamClose(PeerType)          {}
func (*DefaultTcpContext) OnStreamDone()                     {}

var (
	_ VMContext     = (*DefaultVMContext)(nil)
	_ PluginContext = (*DefaultPluginContext)(nil)
	_ HttpContext   = (*DefaultHttpContext)(nil)
	_ TcpContext    = (*DefaultTcpContext)(nil)
)
