package hostabi

import "bytes"

// A few lines of Wasm binary encoding, so tests can make guests with no
// language runtime at all: the benchmark then measures the host, not a Go
// scheduler inside the guest.

func leb(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// sleb is n as a signed LEB128 (i32.const's immediate).
func sleb(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if (n == 0 && c&0x40 == 0) || (n == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func vec(items ...[]byte) []byte {
	b := leb(len(items))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, leb(len(body))...), body...)
}

func name(s string) []byte { return append(leb(len(s)), s...) }

const i32 = 0x7f

// wasmFunc is one exported function: its signature and body instructions
// (without the trailing end).
type wasmFunc struct {
	export  string
	params  []byte
	results []byte
	body    []byte
}

// wasmImport is an imported function; imports take the first function
// indexes, in order.
type wasmImport struct {
	module, name    string
	params, results []byte
}

// buildModule encodes a module with one page of memory and the functions.
func buildModule(funcs ...wasmFunc) []byte { return buildModuleWith(nil, nil, funcs...) }

func funcType(params, results []byte) []byte {
	return append(append([]byte{0x60}, vec(bytesOf(params)...)...), vec(bytesOf(results)...)...)
}

// buildModuleWith adds imports and data placed at offset 0.
func buildModuleWith(imports []wasmImport, data []byte, funcs ...wasmFunc) []byte {
	var types, imps, fidx, exports, codes [][]byte
	for i, im := range imports {
		types = append(types, funcType(im.params, im.results))
		imps = append(imps, append(append(append(name(im.module), name(im.name)...), 0x00), leb(i)...))
	}
	for i, f := range funcs {
		t := len(imports) + i
		types = append(types, funcType(f.params, f.results))
		fidx = append(fidx, leb(t))
		if f.export != "" {
			exports = append(exports, append(append(name(f.export), 0x00), leb(t)...))
		}
		body := append([]byte{0x00}, append(f.body, 0x0b)...)
		codes = append(codes, append(leb(len(body)), body...))
	}
	exports = append(exports, append(name("memory"), 0x02, 0x00))
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, vec(types...))...)
	if len(imps) > 0 {
		m = append(m, section(2, vec(imps...))...)
	}
	m = append(m, section(3, vec(fidx...))...)
	m = append(m, section(5, vec([]byte{0x00, 0x01}))...)
	m = append(m, section(7, vec(exports...))...)
	m = append(m, section(10, vec(codes...))...)
	if len(data) > 0 {
		seg := append([]byte{0x00, 0x41, 0x00, 0x0b}, append(leb(len(data)), data...)...)
		m = append(m, section(11, vec(seg))...)
	}
	return m
}

// i32c is i32.const n (n < 64, a one-byte signed LEB).
func i32c(n byte) []byte { return []byte{0x41, n} }

// call is a call to function index n (< 128).
func call(n byte) []byte { return []byte{0x10, n} }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = []byte{b[i]}
	}
	return out
}

// minimalGuest answers every stream callback with Continue; allocations
// always land at offset 1024.
func minimalGuest() []byte {
	return buildModule(
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		wasmFunc{export: "proxy_on_context_create", params: []byte{i32, i32}},
		wasmFunc{export: "proxy_on_request_headers", params: []byte{i32, i32, i32}, results: []byte{i32}, body: []byte{0x41, 0x00}},
	)
}

// loopGuest spins forever in proxy_on_request_headers.
func loopGuest() []byte {
	return buildModule(
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		wasmFunc{export: "proxy_on_request_headers", params: []byte{i32, i32, i32}, results: []byte{i32},
			body: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x41, 0x00}}, // loop br 0 end; i32.const 0
	)
}

// floodGuest logs one 100-byte line at info level in an endless loop in
// proxy_on_request_headers: a filter that floods the log until its
// deadline stops it.
func floodGuest() []byte {
	line := []byte("flood: ")
	for len(line) < 100 {
		line = append(line, 'x')
	}
	return buildModuleWith(
		[]wasmImport{{module: "env", name: "proxy_log", params: []byte{i32, i32, i32}, results: []byte{i32}}},
		line,
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		wasmFunc{export: "proxy_on_context_create", params: []byte{i32, i32}},
		wasmFunc{export: "proxy_on_request_headers", params: []byte{i32, i32, i32}, results: []byte{i32},
			body: cat([]byte{0x03, 0x40}, i32c(2), i32c(0), []byte{0x41, 0xe4, 0x00}, call(0), []byte{0x1a, 0x0c, 0x00, 0x0b}, i32c(0))},
	)
}

// bombModule is 190 bytes whose code section claims 2^32-1 function
// bodies (one type, one function declared).
func bombModule() []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, vec(funcType(nil, nil)))...)
	m = append(m, section(3, vec(leb(0)))...)
	code := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	for len(m)+3+len(code) < 190 {
		code = append(code, 0x02, 0x00, 0x0b)[:min(len(code)+3, 190-len(m)-3)]
	}
	return append(m, section(10, code)...)
}

// localsBomb declares one function with 2^32-1 i32 locals in 8 bytes.
func localsBomb() []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, vec(funcType(nil, nil)))...)
	m = append(m, section(3, vec(leb(0)))...)
	body := []byte{0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, i32, 0x0b}
	return append(m, section(10, vec(append(leb(len(body)), body...)))...)
}

// slowLoopGuest grows its memory to 16MiB and clears all of it on every
// turn of an endless loop in proxy_on_request_headers: few checks, each
// far apart (a millisecond or more: Budget turns take seconds).
func slowLoopGuest() []byte {
	return buildModule(
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x80, 0x08}},
		wasmFunc{export: "proxy_on_context_create", params: []byte{i32, i32}},
		wasmFunc{export: "proxy_on_request_headers", params: []byte{i32, i32, i32}, results: []byte{i32},
			body: cat([]byte{0x41, 0xff, 0x01, 0x40, 0x00, 0x1a}, // memory.grow 255; drop
				[]byte{0x03, 0x40}, i32c(0), i32c(0), []byte{0x41, 0x80, 0x80, 0x80, 0x08, 0xfc, 0x0b, 0x00, 0x0c, 0x00, 0x0b}, // loop memory.fill(0, 0, 16MiB) br 0 end
				i32c(0))},
	)
}

// headerCalls are the header-map hostcalls headerFuzzGuest makes, in
// order, with their parameter counts.
var headerCalls = []struct {
	name   string
	params int
}{
	{"proxy_get_header_map_pairs", 3},
	{"proxy_set_header_map_pairs", 3},
	{"proxy_get_header_map_size", 2},
	{"proxy_get_header_map_value", 5},
	{"proxy_add_header_map_value", 5},
	{"proxy_replace_header_map_value", 5},
	{"proxy_remove_header_map_value", 3},
}

// headerFuzzGuest makes every header-map hostcall in
// proxy_on_request_headers with arguments it loads from its memory: call
// i takes its (up to five) arguments from the words at 20*i. Its
// allocator returns whatever word 252 holds. A test writes these words
// (and any bytes they point at) before the callback: hostile pointers,
// lengths, map types and allocations alike.
func headerFuzzGuest() []byte {
	var imports []wasmImport
	var calls []byte
	for i, c := range headerCalls {
		imports = append(imports, wasmImport{module: "env", name: c.name, params: bytes.Repeat([]byte{i32}, c.params), results: []byte{i32}})
		for j := range c.params {
			calls = append(calls, 0x41, 0x00, 0x28, 0x02) // i32.const 0; i32.load align=4
			calls = append(calls, leb(20*i+4*j)...)       // offset
		}
		calls = append(calls, 0x10, byte(i), 0x1a) // call i; drop
	}
	return buildModuleWith(imports, nil,
		wasmFunc{export: "proxy_abi_version_0_2_1"},
		wasmFunc{export: "proxy_on_memory_allocate", params: []byte{i32}, results: []byte{i32}, body: []byte{0x41, 0x00, 0x28, 0x02, 0xfc, 0x01}},
		wasmFunc{export: "proxy_on_context_create", params: []byte{i32, i32}},
		wasmFunc{export: "proxy_on_request_headers", params: []byte{i32, i32, i32}, results: []byte{i32}, body: append(calls, 0x41, 0x00)},
	)
}

// withStart adds a start section naming function fn to a module from
// buildModule (before its code section, where the order puts it).
func withStart(m []byte, fn int) []byte {
	pos := 8
	for pos < len(m) && m[pos] != 10 {
		size, n := 0, 0
		for shift := 0; ; shift += 7 {
			c := m[pos+1+n]
			n++
			size |= int(c&0x7f) << shift
			if c&0x80 == 0 {
				break
			}
		}
		pos += 1 + n + size
	}
	return cat(m[:pos], section(8, leb(fn)), m[pos:])
}
