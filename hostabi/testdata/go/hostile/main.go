// Command hostile is a proxy-wasm test guest that misbehaves on purpose.
// Its plugin configuration names what it does in on_request_headers:
//
//	ok        continue (the control case)
//	loop      spin forever (the host's call deadline must stop it)
//	bomb      grow linear memory until refused, then touch it all
//	trap      panic (a Go guest exits through proc_exit)
//	badptr    hand the host pointers outside linear memory
//	bigalloc  ask the host to copy a huge header value in
//	refuse    fail proxy_on_configure
//	crashcfg  panic in proxy_on_configure
//
// A "mode@N" form misbehaves only on the Nth request of an instance, so
// tests can show that the instance before it worked.
package main

import (
	"strconv"
	"strings"
	"unsafe"
)

func main() {}

//go:wasmimport env proxy_log
func proxyLog(level, ptr, size uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(typ, start, max, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
func proxyGetHeaderMapPairs(typ, outPtr, outSize uint32) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(typ, kptr, ksize, vptr, vsize uint32) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(typ, kptr, ksize, outPtr, outSize uint32) uint32

var (
	mode  string
	nth   int
	count int
	keep  [][]byte
	sink  byte
)

//go:wasmexport proxy_abi_version_0_2_0
func abiVersion() {}

//go:wasmexport proxy_on_memory_allocate
func onMemoryAllocate(size uint32) uint32 {
	b := make([]byte, size)
	keep = append(keep[:0], b)
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

//go:wasmexport proxy_on_context_create
func onContextCreate(id, parent uint32) {}

//go:wasmexport proxy_on_vm_start
func onVMStart(root, size uint32) uint32 { return 1 }

//go:wasmexport proxy_on_configure
func onConfigure(root, size uint32) uint32 {
	var p, n uint32
	proxyGetBufferBytes(7, 0, size, uint32(uintptr(unsafe.Pointer(&p))), uint32(uintptr(unsafe.Pointer(&n))))
	cfg := string(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n))
	mode, nth = cfg, 1
	if m, at, ok := strings.Cut(cfg, "@"); ok {
		mode = m
		nth, _ = strconv.Atoi(at)
	}
	switch mode {
	case "refuse":
		return 0
	case "crashcfg":
		panic("configure crashed on purpose")
	}
	return 1
}

func logs(s string) {
	b := []byte(s)
	proxyLog(2, uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)))
}

//go:wasmexport proxy_on_request_headers
func onRequestHeaders(id, n, eos uint32) uint32 {
	count++
	if count < nth {
		return 0
	}
	switch mode {
	case "loop":
		for {
			sink++
		}
	case "bomb":
		for {
			b := make([]byte, 16<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
	case "trap":
		var p *int
		sink = byte(*p)
	case "badptr":
		const bad = 0xfffffff0
		s1 := proxyLog(2, bad, 1000)
		s2 := proxyGetHeaderMapPairs(0, bad, bad)
		k := []byte("x")
		s3 := proxyAddHeaderMapValue(0, uint32(uintptr(unsafe.Pointer(&k[0]))), 1, bad, 5)
		logs("badptr " + strconv.Itoa(int(s1)) + " " + strconv.Itoa(int(s2)) + " " + strconv.Itoa(int(s3)))
	case "bigalloc":
		k := []byte("x-big")
		var p, n uint32
		s := proxyGetHeaderMapValue(0, uint32(uintptr(unsafe.Pointer(&k[0]))), uint32(len(k)),
			uint32(uintptr(unsafe.Pointer(&p))), uint32(uintptr(unsafe.Pointer(&n))))
		logs("bigalloc " + strconv.Itoa(int(s)) + " " + strconv.Itoa(int(n)))
	}
	return 0
}

//go:wasmexport proxy_on_done
func onDone(id uint32) uint32 { return 1 }

//go:wasmexport proxy_on_delete
func onDelete(id uint32) {}
