// Package types holds the context interfaces a filter implements, the
// statuses its callbacks return, and the errors hostcalls report. It mirrors
// the types package of proxy-wasm-go-sdk so that filters port by changing
// import paths.
package types

import "errors"

// Action is what a stream callback returns (proxy_action_t).
type Action uint32

const (
	// ActionContinue lets the headers, body chunk or data go on.
	ActionContinue Action = 0
	// ActionPause holds the stream until proxywasm.ResumeHttpRequest (or
	// Response, or ContinueTcpStream) or a local response. From a body
	// callback it also asks the host to buffer the body until end of stream.
	ActionPause Action = 1
)

// PeerType says which side closed a TCP connection.
type PeerType uint32

const (
	PeerTypeUnknown PeerType = 0
	PeerTypeLocal   PeerType = 1
	PeerTypeRemote  PeerType = 2
)

// LogLevel is proxy_log_level_t.
type LogLevel uint32

const (
	LogLevelTrace    LogLevel = 0
	LogLevelDebug    LogLevel = 1
	LogLevelInfo     LogLevel = 2
	LogLevelWarn     LogLevel = 3
	LogLevelError    LogLevel = 4
	LogLevelCritical LogLevel = 5
)

func (l LogLevel) String() string {
	switch l {
	case LogLevelTrace:
		return "trace"
	case LogLevelDebug:
		return "debug"
	case LogLevelInfo:
		return "info"
	case LogLevelWarn:
		return "warn"
	case LogLevelError:
		return "error"
	case LogLevelCritical:
		return "critical"
	}
	return "unknown"
}

// OnVMStartStatus is returned from VMContext.OnVMStart; false makes the host
// refuse the module.
type OnVMStartStatus bool

const (
	OnVMStartStatusOK     OnVMStartStatus = true
	OnVMStartStatusFailed OnVMStartStatus = false
)

// OnPluginStartStatus is returned from PluginContext.OnPluginStart; false
// makes the host reject the plugin's configuration.
type OnPluginStartStatus bool

const (
	OnPluginStartStatusOK     OnPluginStartStatus = true
	OnPluginStartStatusFailed OnPluginStartStatus = false
)

// Errors that hostcalls return, one per proxy_status_t the host may report.
// Callers compare with errors.Is.
var (
	ErrorStatusNotFound             = errors.New("proxy-wasm: not found")
	ErrorStatusBadArgument          = errors.New("proxy-wasm: bad argument")
	ErrorStatusSerializationFailure = errors.New("proxy-wasm: serialization failure")
	ErrorStatusParseFailure         = errors.New("proxy-wasm: parse failure")
	ErrorStatusBadExpression        = errors.New("proxy-wasm: bad expression")
	ErrorStatusInvalidMemoryAccess  = errors.New("proxy-wasm: invalid memory access")
	ErrorStatusEmpty                = errors.New("proxy-wasm: empty")
	ErrorStatusCasMismatch          = errors.New("proxy-wasm: CAS mismatch")
	ErrorStatusResultMismatch       = errors.New("proxy-wasm: result mismatch")
	ErrorStatusInternalFailure      = errors.New("proxy-wasm: internal failure")
	ErrorStatusBrokenConnection     = errors.New("proxy-wasm: broken connection")
	ErrorStatusUnimplemented        = errors.New("proxy-wasm: unimplemented")
	// ErrorStatusUnknown stands for a status code this SDK does not know.
	ErrorStatusUnknown = errors.New("proxy-wasm: unknown status")
)

// HttpCalloutCallBack receives the reply to proxywasm.DispatchHttpCall.
// numHeaders == 0 means the call failed (no such cluster, timeout, reset).
// Inside it, proxywasm.GetHttpCallResponseHeaders and friends read the reply.
type HttpCalloutCallBack func(numHeaders, bodySize, numTrailers int)
