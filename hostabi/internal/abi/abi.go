// Package abi holds the numbers of the proxy-wasm ABI (v0.1.0, v0.2.0,
// v0.2.1) in one place, so the host functions and callbacks agree on them.
// Values follow proxy-wasm-cpp-sdk's proxy_wasm_common.h and the spec.
package abi

// Status is proxy_status_t (Envoy's WasmResult).
type Status uint32

const (
	OK                   Status = 0
	NotFound             Status = 1
	BadArgument          Status = 2
	SerializationFailure Status = 3
	ParseFailure         Status = 4
	BadExpression        Status = 5
	InvalidMemoryAccess  Status = 6
	Empty                Status = 7
	CasMismatch          Status = 8
	ResultMismatch       Status = 9
	InternalFailure      Status = 10
	BrokenConnection     Status = 11
	Unimplemented        Status = 12
)

var statusNames = [...]string{"Ok", "NotFound", "BadArgument", "SerializationFailure",
	"ParseFailure", "BadExpression", "InvalidMemoryAccess", "Empty", "CasMismatch",
	"ResultMismatch", "InternalFailure", "BrokenConnection", "Unimplemented"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "Unknown"
}

// BufferType selects a buffer for proxy_get_buffer_bytes and friends.
type BufferType uint32

const (
	BufferHTTPRequestBody      BufferType = 0
	BufferHTTPResponseBody     BufferType = 1
	BufferDownstreamData       BufferType = 2
	BufferUpstreamData         BufferType = 3
	BufferHTTPCallResponseBody BufferType = 4
	BufferGRPCReceive          BufferType = 5
	BufferVMConfiguration      BufferType = 6
	BufferPluginConfiguration  BufferType = 7
	BufferForeignFunctionArgs  BufferType = 8
)

// MapType selects a header map.
type MapType uint32

const (
	MapHTTPRequestHeaders       MapType = 0
	MapHTTPRequestTrailers      MapType = 1
	MapHTTPResponseHeaders      MapType = 2
	MapHTTPResponseTrailers     MapType = 3
	MapGRPCInitialMetadata      MapType = 4
	MapGRPCTrailingMetadata     MapType = 5
	MapHTTPCallResponseHeaders  MapType = 6
	MapHTTPCallResponseTrailers MapType = 7
)

// LogLevel is proxy_log_level_t.
type LogLevel uint32

const (
	LogTrace    LogLevel = 0
	LogDebug    LogLevel = 1
	LogInfo     LogLevel = 2
	LogWarn     LogLevel = 3
	LogError    LogLevel = 4
	LogCritical LogLevel = 5
)

// Action is proxy_action_t as returned by stream callbacks. Envoy-internal
// values above Pause are accepted and mapped by the host.
type Action uint32

const (
	ActionContinue Action = 0
	ActionPause    Action = 1
	// Data callbacks: FilterDataStatus::StopIterationAndBuffer is 1 as well;
	// StopIterationAndWatermark 2, StopIterationNoBuffer 3.
	ActionStopAllIterationAndBuffer Action = 3
)

// StreamType is proxy_stream_type_t (v0.2.0+).
type StreamType uint32

const (
	StreamHTTPRequest  StreamType = 0
	StreamHTTPResponse StreamType = 1
	StreamDownstream   StreamType = 2
	StreamUpstream     StreamType = 3
)

// MetricType is proxy_metric_type_t.
type MetricType uint32

const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
)

// PeerType is proxy_peer_type_t for connection close callbacks.
type PeerType uint32

const (
	PeerUnknown PeerType = 0
	PeerLocal   PeerType = 1
	PeerRemote  PeerType = 2
)

// Version is an ABI version a module declares by export name.
type Version int

const (
	VersionUnknown Version = iota
	Version010
	Version020
	Version021
)

func (v Version) String() string {
	switch v {
	case Version010:
		return "0.1.0"
	case Version020:
		return "0.2.0"
	case Version021:
		return "0.2.1"
	}
	return "unknown"
}

// VersionExports maps the marker export to its version.
var VersionExports = map[string]Version{
	"proxy_abi_version_0_1_0": Version010,
	"proxy_abi_version_0_2_0": Version020,
	"proxy_abi_version_0_2_1": Version021,
}

// WASI errno values used by the host.
const (
	ErrnoSuccess    uint32 = 0
	ErrnoBadf       uint32 = 8
	ErrnoFault      uint32 = 21
	ErrnoInval      uint32 = 28
	ErrnoNoent      uint32 = 44
	ErrnoNosys      uint32 = 52
	ErrnoNotsup     uint32 = 58
	ErrnoNotcapable uint32 = 76
)
