// Command raw is the benchmark's header filter against the bare proxy-wasm
// ABI: no contexts, no maps, no allocation; the floor the SDK is compared
// with.
package main

import "unsafe"

func main() {}

//go:wasmimport env proxy_add_header_map_value
func addHeader(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmexport proxy_abi_version_0_2_1
func abiVersion() {}

var heap [][]byte

//go:wasmexport proxy_on_memory_allocate
func allocate(size uint32) unsafe.Pointer {
	b := make([]byte, size+1)
	heap = append(heap[:0], b)
	return unsafe.Pointer(&b[0])
}

//go:wasmexport proxy_on_vm_start
func onVMStart(_, _ uint32) uint32 { return 1 }

//go:wasmexport proxy_on_configure
func onConfigure(_, _ uint32) uint32 { return 1 }

//go:wasmexport proxy_on_context_create
func onContextCreate(_, _ uint32) {}

var key, value = []byte("x-bench"), []byte("1")

//go:wasmexport proxy_on_request_headers
func onRequestHeaders(_, _, _ uint32) uint32 {
	addHeader(0, unsafe.Pointer(&key[0]), uint32(len(key)), unsafe.Pointer(&value[0]), uint32(len(value)))
	return 0
}

//go:wasmexport proxy_on_response_headers
func onResponseHeaders(_, _, _ uint32) uint32 { return 0 }

//go:wasmexport proxy_on_done
func onDone(uint32) uint32 { return 1 }

//go:wasmexport proxy_on_log
func onLog(uint32) {}

//go:wasmexport proxy_on_delete
func onDelete(uint32) {}
