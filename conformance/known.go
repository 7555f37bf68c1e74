package conformance

// Suite names, as the report's headings.
const (
	SuiteH2SpecMixed = "h2spec: h2c and HTTP/1.1 on one port"
	SuiteH2SpecH2C   = "h2spec: h2c only"
	SuiteH2SpecTLS   = "h2spec: h2 over TLS"
	SuiteGRPCH2C     = "gRPC interop: h2c"
	SuiteGRPCTLS     = "gRPC interop: h2 over TLS"
	SuiteGRPCFilter  = "gRPC interop: h2c through a Wasm filter"
	SuiteHTTP3       = "HTTP/3"
	SuiteABI         = "proxy-wasm ABI"
	SuiteAS          = "AssemblyScript SDK"
)

// known lists, per suite and case, the failures that are known differences
// from the RFC or from Envoy, with the reason. A failure listed here does
// not fail `make conformance`; one that is not listed does.
var known = map[string]map[string]string{
	SuiteAS: {
		"README example with an empty configuration: hello: world!": "A bug of @solo-io/proxy-runtime 0.1.8, not of the host: RootContext.onConfigure passes configuration_size as the size pointer of proxy_get_buffer_bytes, and with an empty configuration reads the (ptr 0, size 0) that proxy-wasm-cpp-host's get_buffer_bytes writes for an empty range (src/exports.cc) back as an ArrayBuffer at address 0, which traps. sluice writes exactly what cpp-host writes; with a configuration (the SDK README's way) the example works (previous rows).",
	},
}

// KnownDifference reports whether a failing case is a known difference,
// and why.
func KnownDifference(suite, name string) (string, bool) {
	why, ok := known[suite][name]
	return why, ok
}

// bugs explains failures whose cause is known to be a bug in sluice (not a
// difference we accept): they still fail the run, and the report says what
// is wrong and where, until the owning package fixes it.
var bugs = map[string]map[string]string{}

// BugCause returns the known cause of a failing case that is a sluice bug.
func BugCause(suite, name string) (string, bool) {
	why, ok := bugs[suite][name]
	return why, ok
}
