//go:build wasip1

package proxywasm

import "unsafe"

// The proxy_on_* exports. Booleans cross the boundary as i32 both ways.

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion0_2_1() {}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) unsafe.Pointer { return allocate(size) }

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(_, vmConfigSize uint32) uint32 { return b2u(current.onVMStart(vmConfigSize)) }

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(contextID, parentID uint32) { current.onContextCreate(contextID, parentID) }

//go:wasmexport proxy_on_configure
func proxyOnConfigure(rootID, size uint32) uint32 { return b2u(current.onConfigure(rootID, size)) }

//go:wasmexport proxy_on_done
func proxyOnDone(contextID uint32) uint32 { return b2u(current.onDone(contextID)) }

//go:wasmexport proxy_on_log
func proxyOnLog(contextID uint32) { current.onLog(contextID) }

//go:wasmexport proxy_on_delete
func proxyOnDelete(contextID uint32) { current.onDelete(contextID) }

//go:wasmexport proxy_on_tick
func proxyOnTick(rootID uint32) { current.onTick(rootID) }

//go:wasmexport proxy_on_queue_ready
func proxyOnQueueReady(rootID, queueID uint32) { current.onQueueReady(rootID, queueID) }

//go:wasmexport proxy_on_http_call_response
func proxyOnHTTPCallResponse(rootID, calloutID, numHeaders, bodySize, numTrailers uint32) {
	current.onHTTPCallResponse(rootID, calloutID, numHeaders, bodySize, numTrailers)
}

//go:wasmexport proxy_on_grpc_receive_initial_metadata
func proxyOnGrpcReceiveInitialMetadata(rootID, token, n uint32) {
	current.onGrpcInitialMetadata(rootID, token, n)
}

//go:wasmexport proxy_on_grpc_receive
func proxyOnGrpcReceive(rootID, token, size uint32) { current.onGrpcReceive(rootID, token, size) }

//go:wasmexport proxy_on_grpc_receive_trailing_metadata
func proxyOnGrpcReceiveTrailingMetadata(rootID, token, n uint32) {
	current.onGrpcTrailingMetadata(rootID, token, n)
}

//go:wasmexport proxy_on_grpc_close
func proxyOnGrpcClose(rootID, token, status uint32) { current.onGrpcClose(rootID, token, status) }

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(id, n, eos uint32) uint32 {
	return uint32(current.onRequestHeaders(id, n, eos != 0))
}

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(id, n, eos uint32) uint32 {
	return uint32(current.onRequestBody(id, n, eos != 0))
}

//go:wasmexport proxy_on_request_trailers
func proxyOnRequestTrailers(id, n uint32) uint32 { return uint32(current.onRequestTrailers(id, n)) }

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(id, n, eos uint32) uint32 {
	return uint32(current.onResponseHeaders(id, n, eos != 0))
}

//go:wasmexport proxy_on_response_body
func proxyOnResponseBody(id, n, eos uint32) uint32 {
	return uint32(current.onResponseBody(id, n, eos != 0))
}

//go:wasmexport proxy_on_response_trailers
func proxyOnResponseTrailers(id, n uint32) uint32 { return uint32(current.onResponseTrailers(id, n)) }

//go:wasmexport proxy_on_new_connection
func proxyOnNewConnection(id uint32) uint32 { return uint32(current.onNewConnection(id)) }

//go:wasmexport proxy_on_downstream_data
func proxyOnDownstreamData(id, n, eos uint32) uint32 {
	return uint32(current.onDownstreamData(id, n, eos != 0))
}

//go:wasmexport proxy_on_upstream_data
func proxyOnUpstreamData(id, n, eos uint32) uint32 {
	return uint32(current.onUpstreamData(id, n, eos != 0))
}

//go:wasmexport proxy_on_downstream_connection_close
func proxyOnDownstreamConnectionClose(id, peer uint32) { current.onDownstreamClose(id, peer) }

//go:wasmexport proxy_on_upstream_connection_close
func proxyOnUpstreamConnectionClose(id, peer uint32) { current.onUpstreamClose(id, peer) }

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
