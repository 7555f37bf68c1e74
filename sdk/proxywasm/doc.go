// Package proxywasm is the API a Go proxy-wasm filter is written against:
// register contexts, then call hostcalls from their callbacks. It follows
// proxy-wasm-go-sdk's names, so filters written for Envoy port by changing
// import paths, and it advertises ABI v0.2.1.
//
// Build a filter with Go >= 1.24:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o filter.wasm .
//
// The module is a WASI reactor: main never runs, so register contexts in
// init. The source is TinyGo-compatible as well.
//
// What a filter may import: anything that compiles for wasip1 without
// goroutines doing real work (there is one thread, and nothing runs between
// callbacks). strings, strconv, bytes, errors, fmt, sort, math, hash/*,
// crypto/*, encoding/base64, encoding/hex, unicode/*, net/netip and regexp
// are fine under both Go and TinyGo; encoding/json works under Go (it costs
// about 0.3 MiB of module) but is slow or incomplete under TinyGo. Do not
// use time.Sleep, goroutines, os/exec, net or file I/O: the host provides
// none of them (time.Now is fine, but GetCurrentTimeNanoseconds is the
// host's clock).
package proxywasm
