// Package defaults records which of DefaultHttpContext's no-op methods
// ran, so proxywasm can tell the host which callbacks a plugin leaves at
// their defaults (proxywasm.SkipDefaultCallbacks).
package defaults

// The bits, in the order of sluice's sluice_skip_callbacks argument.
const (
	RequestHeaders uint32 = 1 << iota
	RequestBody
	RequestTrailers
	ResponseHeaders
	ResponseBody
	ResponseTrailers
	StreamDone
)

// Ran collects the bits of the default methods that ran since proxywasm
// last read it. A guest is single-threaded.
var Ran uint32
