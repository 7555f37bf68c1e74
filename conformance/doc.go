// Package conformance is sluice's evidence that it speaks the standards and
// behaves as Envoy does: h2spec against every HTTP/2 listener shape,
// grpc-go's interop client through the proxy over h2c and TLS, quic-go's
// HTTP/3 client, proxy-wasm ABI cases driven through a real sluice with the
// raw-ABI test guests of hostabi/testdata, and a filter built with the
// AssemblyScript proxy-wasm SDK from npm.
//
// The suites are Go tests (`go test ./conformance/`, `make conformance`).
// Each case becomes a row of conformance/REPORT.md; a failing case fails
// the run unless known.go lists it as a known difference, with the reason.
package conformance
