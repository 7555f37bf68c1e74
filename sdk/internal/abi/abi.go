// Package abi declares the proxy-wasm v0.2.1 hostcalls (module "env") and the
// ABI's enum values. On wasip1 the functions are //go:wasmimport
// declarations; on every other platform they are stubs, so the SDK and the
// filters built on it compile, vet and unit-test natively.
package abi

import "unsafe"

// Status is proxy_status_t (proxy-wasm-cpp-sdk's WasmResult numbering).
type Status = uint32

const (
	StatusOK                   Status = 0
	StatusNotFound             Status = 1
	StatusBadArgument          Status = 2
	StatusSerializationFailure Status = 3
	StatusParseFailure         Status = 4
	StatusBadExpression        Status = 5
	StatusInvalidMemoryAccess  Status = 6
	StatusEmpty                Status = 7
	StatusCasMismatch          Status = 8
	StatusResultMismatch       Status = 9
	StatusInternalFailure      Status = 10
	StatusBrokenConnection     Status = 11
	StatusUnimplemented        Status = 12
)

// Buffer types (proxy_buffer_type_t).
const (
	BufferHTTPRequestBody      uint32 = 0
	BufferHTTPResponseBody     uint32 = 1
	BufferDownstreamData       uint32 = 2
	BufferUpstreamData         uint32 = 3
	BufferHTTPCallResponseBody uint32 = 4
	BufferGrpcReceive          uint32 = 5
	BufferVMConfiguration      uint32 = 6
	BufferPluginConfiguration  uint32 = 7
	BufferForeignFunctionArgs  uint32 = 8
)

// Header map types (proxy_map_type_t).
const (
	MapHTTPRequestHeaders       uint32 = 0
	MapHTTPRequestTrailers      uint32 = 1
	MapHTTPResponseHeaders      uint32 = 2
	MapHTTPResponseTrailers     uint32 = 3
	MapGrpcInitialMetadata      uint32 = 4
	MapGrpcTrailingMetadata     uint32 = 5
	MapHTTPCallResponseHeaders  uint32 = 6
	MapHTTPCallResponseTrailers uint32 = 7
)

// Stream types (proxy_stream_type_t, v0.2.0+).
const (
	StreamHTTPRequest  uint32 = 0
	StreamHTTPResponse uint32 = 1
	StreamDownstream   uint32 = 2
	StreamUpstream     uint32 = 3
)

// BytesPtr returns the address of b's first byte, or nil for an empty slice
// (the host never dereferences a pointer whose length is zero).
func BytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// StringPtr is BytesPtr for strings, without copying.
func StringPtr(s string) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}
