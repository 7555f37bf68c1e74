// Command abi010 is a test guest that speaks proxy-wasm ABI 0.1.0: header
// callbacks without end_of_stream, proxy_get_configuration,
// proxy_continue_request and malloc instead of proxy_on_memory_allocate.
package main

import (
	"strconv"
	"unsafe"
)

func main() {}

//go:wasmimport env proxy_log
func proxyLog(level, ptr, size uint32) uint32

//go:wasmimport env proxy_get_configuration
func proxyGetConfiguration(outPtr, outSize uint32) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(typ, kptr, ksize, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_continue_request
func proxyContinueRequest() uint32

//go:wasmimport env proxy_continue_response
func proxyContinueResponse() uint32

//go:wasmimport env proxy_clear_route_cache
func proxyClearRouteCache() uint32

//go:wasmimport env proxy_set_effective_context
func proxySetEffectiveContext(id uint32) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
func proxySetTickPeriod(ms uint32) uint32

var (
	keep   [][]byte
	stream uint32
	config string
)

func p32(p *uint32) uint32 { return uint32(uintptr(unsafe.Pointer(p))) }

func logs(s string) {
	b := []byte(s)
	proxyLog(2, uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)))
}

//go:wasmexport proxy_abi_version_0_1_0
func abiVersion() {}

//go:wasmexport malloc
func malloc(size uint32) uint32 {
	b := make([]byte, size)
	keep = append(keep, b)
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

//go:wasmexport proxy_on_context_create
func onContextCreate(id, parent uint32) {}

//go:wasmexport proxy_on_configure
func onConfigure(root, size uint32) uint32 {
	var p, n uint32
	s := proxyGetConfiguration(p32(&p), p32(&n))
	config = string(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n))
	logs("configure " + strconv.Itoa(int(s)) + " " + config)
	return 1
}

//go:wasmexport proxy_on_request_headers
func onRequestHeaders(id, n uint32) uint32 {
	keep = keep[:0]
	stream = id
	k := []byte("missing")
	var p, l uint32
	s := proxyGetHeaderMapValue(0, uint32(uintptr(unsafe.Pointer(&k[0]))), uint32(len(k)), p32(&p), p32(&l))
	logs("request_headers n=" + strconv.Itoa(int(n)) + " missing=" + strconv.Itoa(int(s)) +
		" clear=" + strconv.Itoa(int(proxyClearRouteCache())))
	if config == "pause" {
		proxySetTickPeriod(5)
		return 1
	}
	return 0
}

//go:wasmexport proxy_on_response_headers
func onResponseHeaders(id, n uint32) uint32 {
	logs("response_headers n=" + strconv.Itoa(int(n)) + " continue=" + strconv.Itoa(int(proxyContinueResponse())))
	return 0
}

//go:wasmexport proxy_on_tick
func onTick(root uint32) {
	proxySetTickPeriod(0)
	proxySetEffectiveContext(stream)
	logs("tick continue=" + strconv.Itoa(int(proxyContinueRequest())))
}

//go:wasmexport proxy_on_done
func onDone(id uint32) uint32 { return 1 }
