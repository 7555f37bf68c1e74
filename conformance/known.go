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

// goH2 explains the h2spec cases Go's HTTP/2 server (golang.org/x/net/http2
// as bundled in net/http) answers differently from RFC 9113/7540's MUST.
var goH2 = map[string]string{
	"http2/6.5.3/1":   "Go's HTTP/2 server closes the connection when one SETTINGS frame repeats SETTINGS_INITIAL_WINDOW_SIZE (a defence against settings floods); the RFC says the last value wins.",
	"http2/8.1.2.2/1": "Go answers a request carrying a connection-specific header (connection:) with 400 Bad Request on the stream instead of RST_STREAM PROTOCOL_ERROR; the request is still refused.",
	"http2/8.1.2.2/2": "Go answers a request with TE other than \"trailers\" with 400 Bad Request on the stream instead of RST_STREAM PROTOCOL_ERROR; the request is still refused.",
}

// known lists, per suite and case, the failures that are known differences
// from the RFC or from Envoy, with the reason. A failure listed here does
// not fail `make conformance`; one that is not listed does.
var known = map[string]map[string]string{
	SuiteH2SpecMixed: merge(goH2, map[string]string{
		"http2/3.5/2": "On a port that also speaks HTTP/1.1 an invalid HTTP/2 preface is a valid start of an HTTP/1.1 request, which gets 400 Bad Request instead of a connection error; an h2c-only listener closes the connection as the RFC asks (see the h2c-only suite).",
	}),
	SuiteH2SpecH2C: goH2,
	SuiteABI: {
		"trailers-only request over h2c (HEADERS, then HEADERS with END_STREAM, no DATA): headers eos=0, trailers callback": "Go's HTTP/2 server (net/http's bundled x/net/http2, processTrailerHeaders) keeps only the request trailers the client declared in a trailer header and drops the others; the filter sees the body end (size 0, end_of_stream) and no trailers callback. Envoy delivers undeclared trailers. Declared ones work (previous row).",
		"grpc_stream opens a gRPC stream": "hostabi answers proxy_grpc_stream with Unimplemented (12): gRPC calls ride on the HTTP caller as unary HTTP/2 POSTs, and streaming calls are not built (hostabi/README.md, gRPC). Envoy opens the stream.",
	},
	SuiteH2SpecTLS: goH2,
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
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
var bugs = map[string]map[string]string{
	SuiteABI: {
		"proxy_done from a root context that is not waiting to be done is NotFound":                                       "hostabi/log.go hcDone answers Ok whenever the effective context is a root context; proxy-wasm-cpp-host src/wasm.cc WasmBase::done answers NotFound unless that root context's proxy_on_done returned false and it is pending (proxy_done is how such a context finishes later).",
		"edge: get_buffer_bytes with start past the end returns no bytes; a buffer type past the last one is BadArgument": "hostabi/buffers.go answers a buffer type beyond FOREIGN_FUNCTION_ARGUMENTS (8) with NotFound; proxy-wasm-cpp-host src/exports.cc checks type > WasmBufferType::MAX first and answers BadArgument (NotFound is for a known buffer the context does not have).",
		"response trailers: proxy_on_response_trailers, trailer map (3) read and added to":                                "runtime/proxy: with a Wasm filter on the route, an HTTP/1.1 response that ends in trailers is sent to the client with a Content-Length (the body was read ahead) and its trailers are dropped; the filter's proxy_on_response_trailers runs and reads them (hdr_get 3 works), and without a filter the client gets them. Fix: keep chunked encoding (and declare Trailer) when the upstream response has trailers.",
	},
	SuiteAS: {
		"README example with an empty configuration: hello: world!": "hostabi/buffers.go hcGetBufferBytes answers an empty range by allocating in the guest and writing the pointer and size 0, where proxy-wasm-cpp-host src/exports.cc get_buffer_bytes returns Ok and writes nothing when the length is 0. The AssemblyScript SDK 0.1.8 passes the configuration size as the size pointer (RootContext.onConfigure), so with an empty configuration sluice writes to address 0 and the SDK then traps (out of bounds memory access) in proxy_on_configure; under Envoy nothing is written and the README's \"world!\" branch works. Fix: return Ok without touching guest memory when the range is empty.",
	},
	SuiteHTTP3: {
		"request trailers": "quic-go's HTTP/3 server replaces http.Request.Trailer with a new map when the trailing HEADERS frame arrives (http3/server_conn.go), where net/http fills the map it declared; runtime/proxy/router.go outboundRequest hands the upstream request the old map (declared keys, nil values), so the upstream gets the trailer name without its value. Fix: copy x.r.Trailer into the outbound request's Trailer at end of body (HTTP/1.1 and h2 work).",
	},
}

// BugCause returns the known cause of a failing case that is a sluice bug.
func BugCause(suite, name string) (string, bool) {
	why, ok := bugs[suite][name]
	return why, ok
}
