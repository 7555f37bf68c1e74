// Package wasmfilter binds proxy-wasm plugins (hostabi) to the filter
// contract (runtime/filter): a loaded plugin becomes a filter.Factory for
// HTTP routes and a filter.NetworkFactory for TCP listeners, with its
// failure policy; the header, body, property, http_call and gRPC hostcalls
// are answered here from what the contract carries (filter.Stream,
// filter.Info, filter.Connection), in Envoy's attribute encoding.
//
// It is the only runtime package besides the server's composition root
// that imports hostabi: the proxy, l4, mesh and upstream see plugins
// through the contract alone.
package wasmfilter
