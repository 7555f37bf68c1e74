package main

import "unsafe"

// Every hostcall is imported with raw integer parameters so the guest can
// also hand the host nonsense pointers on purpose.

//go:wasmimport env proxy_log
func proxyLog(level, ptr, size uint32) uint32

//go:wasmimport env proxy_get_log_level
func proxyGetLogLevel(out uint32) uint32

//go:wasmimport env proxy_get_current_time_nanoseconds
func proxyGetCurrentTime(out uint32) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
func proxySetTickPeriod(ms uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(typ, start, max, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_set_buffer_bytes
func proxySetBufferBytes(typ, start, size, data, dataSize uint32) uint32

//go:wasmimport env proxy_get_buffer_status
func proxyGetBufferStatus(typ, outSize, outFlags uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
func proxyGetHeaderMapPairs(typ, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_set_header_map_pairs
func proxySetHeaderMapPairs(typ, ptr, size uint32) uint32

//go:wasmimport env proxy_get_header_map_size
func proxyGetHeaderMapSize(typ, outSize uint32) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(typ, kptr, ksize, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(typ, kptr, ksize, vptr, vsize uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
func proxyReplaceHeaderMapValue(typ, kptr, ksize, vptr, vsize uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
func proxyRemoveHeaderMapValue(typ, kptr, ksize uint32) uint32

//go:wasmimport env proxy_continue_stream
func proxyContinueStream(typ uint32) uint32

//go:wasmimport env proxy_close_stream
func proxyCloseStream(typ uint32) uint32

//go:wasmimport env proxy_get_status
func proxyGetStatus(outCode, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_send_local_response
func proxySendLocalResponse(status, dptr, dsize, bptr, bsize, hptr, hsize uint32, grpc int32) uint32

//go:wasmimport env proxy_http_call
func proxyHTTPCall(uptr, usize, hptr, hsize, bptr, bsize, tptr, tsize, timeout, outID uint32) uint32

//go:wasmimport env proxy_grpc_call
func proxyGRPCCall(uptr, usize, sptr, ssize, mptr, msize, mdptr, mdsize, msgptr, msgsize, timeout, outID uint32) uint32

//go:wasmimport env proxy_grpc_stream
func proxyGRPCStream(uptr, usize, sptr, ssize, mptr, msize, mdptr, mdsize, outID uint32) uint32

//go:wasmimport env proxy_grpc_send
func proxyGRPCSend(id, ptr, size, end uint32) uint32

//go:wasmimport env proxy_grpc_cancel
func proxyGRPCCancel(id uint32) uint32

//go:wasmimport env proxy_grpc_close
func proxyGRPCClose(id uint32) uint32

//go:wasmimport env proxy_set_shared_data
func proxySetSharedData(kptr, ksize, vptr, vsize, cas uint32) uint32

//go:wasmimport env proxy_get_shared_data
func proxyGetSharedData(kptr, ksize, outPtr, outSize, outCas uint32) uint32

//go:wasmimport env proxy_register_shared_queue
func proxyRegisterSharedQueue(nptr, nsize, outID uint32) uint32

//go:wasmimport env proxy_resolve_shared_queue
func proxyResolveSharedQueue(vptr, vsize, nptr, nsize, outID uint32) uint32

//go:wasmimport env proxy_enqueue_shared_queue
func proxyEnqueueSharedQueue(id, ptr, size uint32) uint32

//go:wasmimport env proxy_dequeue_shared_queue
func proxyDequeueSharedQueue(id, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(typ, nptr, nsize, outID uint32) uint32

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(id uint32, delta int64) uint32

//go:wasmimport env proxy_record_metric
func proxyRecordMetric(id uint32, value uint64) uint32

//go:wasmimport env proxy_get_metric
func proxyGetMetric(id, out uint32) uint32

//go:wasmimport env proxy_get_property
func proxyGetProperty(pptr, psize, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_set_property
func proxySetProperty(pptr, psize, vptr, vsize uint32) uint32

//go:wasmimport env proxy_set_effective_context
func proxySetEffectiveContext(id uint32) uint32

//go:wasmimport env proxy_done
func proxyDone() uint32

//go:wasmimport env proxy_call_foreign_function
func proxyCallForeignFunction(nptr, nsize, aptr, asize, outPtr, outSize uint32) uint32

func ptr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

func ptrOf[T any](p *T) uint32 { return uint32(uintptr(unsafe.Pointer(p))) }

// fromHost turns a buffer the host allocated through proxy_on_memory_allocate
// into a Go slice; the allocation is kept alive in allocs until the next callback.
func fromHost(p, n uint32) []byte {
	if p == 0 || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n)
}
