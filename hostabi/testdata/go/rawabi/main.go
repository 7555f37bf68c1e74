// Command rawabi is a proxy-wasm test guest written against the raw ABI,
// with no SDK, so a host bug can never hide behind an SDK bug. Its
// behaviour is a small script given as VM and plugin configuration:
//
//	callback: op arg arg | op arg
//
// one line per callback (request_headers, tick, http_call_response, ...).
// Every op logs "callback op: result" at info level, which is what the
// host's tests assert on.
package main

import (
	"encoding/binary"
	"runtime"
	"strconv"
	"strings"
	"unsafe"
)

func main() {}

var (
	// script is the current root context's: plugins sharing an instance
	// (one vm_id) each configure their own root context.
	script     = map[string][][]string{}
	scripts    = map[uint32]map[string][][]string{}
	roots      = map[uint32]uint32{}
	allocs     [][]byte
	lastStream uint32
	rootID     uint32
	metricIDs  = map[string]uint32{}
	// quiet: the script has a "quiet:" line.
	quiet bool
	// lastQueue is the queue last registered or reported ready.
	lastQueue uint32
	// cur is the callback being run, for log lines.
	cur string
	// ret is the action the current callback returns; ops may change it.
	ret uint32
)

//go:wasmexport proxy_abi_version_0_2_1
func abiVersion() {}

//go:wasmexport proxy_on_memory_allocate
func onMemoryAllocate(size uint32) uint32 {
	b := make([]byte, size)
	allocs = append(allocs, b)
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

// use switches to the script of ctx's root context.
func use(ctx uint32) {
	r, ok := roots[ctx]
	if !ok {
		r = ctx
	}
	rootID = r
	if scripts[r] == nil {
		scripts[r] = map[string][][]string{}
	}
	script = scripts[r]
	_, quiet = script["quiet"]
}

func parse(cfg string) {
	for _, line := range strings.Split(cfg, "\n") {
		name, body, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		var ops [][]string
		for _, op := range strings.Split(body, "|") {
			f := strings.Fields(op)
			// Unescaped once here: callbacks run the ops many times.
			for i := range f {
				f[i] = unescaper.Replace(f[i])
			}
			if len(f) > 0 {
				ops = append(ops, f)
			}
		}
		script[name] = append(script[name], ops...)
	}
	_, quiet = script["quiet"]
}

func run(name string, def uint32) uint32 {
	allocs = allocs[:0]
	cur, ret = name, def
	for _, op := range script[name] {
		do(op)
	}
	runtime.KeepAlive(allocs)
	return ret
}

// entry logs a callback's arguments unless the script says "quiet:"
// (benchmarks measure the host, not the guest's logging).
func entry(msg string) {
	if !quiet {
		logf(msg)
	}
}

func logf(msg string) {
	if quiet {
		return
	}
	b := []byte(cur + " " + msg)
	proxyLog(2, ptr(b), uint32(len(b)))
}

func st(s uint32) string { return "status=" + strconv.Itoa(int(s)) }

func u32(s string) uint32 {
	n, _ := strconv.ParseInt(s, 0, 64)
	return uint32(n)
}

// unescaper lets scripts carry spaces, separators and newlines.
var unescaper = strings.NewReplacer(`\s`, " ", `\p`, "|", `\n`, "\n", `\0`, "\x00", `\e`, "")

func readConfig(buf uint32) string {
	var p, n uint32
	if s := proxyGetBufferBytes(buf, 0, 1<<30, ptrOf(&p), ptrOf(&n)); s != 0 {
		return ""
	}
	return string(fromHost(p, n))
}

func serializePairs(spec string) []byte {
	if spec == "-" || spec == "" {
		return nil
	}
	var ks, vs []string
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		ks = append(ks, k)
		vs = append(vs, v)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(ks)))
	for i := range ks {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(ks[i])))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(vs[i])))
	}
	for i := range ks {
		out = append(out, ks[i]...)
		out = append(out, 0)
		out = append(out, vs[i]...)
		out = append(out, 0)
	}
	return out
}

func deserializePairs(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	n := binary.LittleEndian.Uint32(b)
	off := 4 + 8*int(n)
	var out []string
	for i := 0; i < int(n); i++ {
		kl := int(binary.LittleEndian.Uint32(b[4+8*i:]))
		vl := int(binary.LittleEndian.Uint32(b[8+8*i:]))
		k := string(b[off : off+kl])
		off += kl + 1
		v := string(b[off : off+vl])
		off += vl + 1
		out = append(out, k+"="+v)
	}
	return strings.Join(out, ",")
}

// unhex decodes hex digits (no encoding/hex: it pulls fmt into the guest).
func unhex(s string) []byte {
	v := func(c byte) byte {
		switch {
		case c >= 'a':
			return c - 'a' + 10
		case c >= 'A':
			return c - 'A' + 10
		}
		return c - '0'
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		out[i] = v(s[2*i])<<4 | v(s[2*i+1])
	}
	return out
}

func path(p string) []byte { return []byte(strings.ReplaceAll(p, "/", "\x00")) }

func do(op []string) {
	arg := func(i int) string {
		if i < len(op) {
			return op[i]
		}
		return ""
	}
	name := op[0]
	res := func(msg string) { logf(name + ": " + msg) }
	switch name {
	case "ret":
		ret = u32(arg(1))
	case "log":
		b := []byte(strings.Join(op[2:], " "))
		proxyLog(u32(arg(1)), ptr(b), uint32(len(b)))
	case "loglevel":
		var l uint32
		s := proxyGetLogLevel(ptrOf(&l))
		res(st(s) + " level=" + strconv.Itoa(int(l)))
	case "time":
		var t uint64
		s := proxyGetCurrentTime(ptrOf(&t))
		res(st(s) + " nonzero=" + strconv.FormatBool(t > 1e18))
	case "tick":
		res(st(proxySetTickPeriod(u32(arg(1)))))
	case "hdr_get":
		k := []byte(arg(2))
		var p, n uint32
		s := proxyGetHeaderMapValue(u32(arg(1)), ptr(k), uint32(len(k)), ptrOf(&p), ptrOf(&n))
		res(st(s) + " " + string(fromHost(p, n)))
	case "hdr_add", "hdr_replace":
		k, v := []byte(arg(2)), []byte(arg(3))
		f := proxyAddHeaderMapValue
		if name == "hdr_replace" {
			f = proxyReplaceHeaderMapValue
		}
		res(st(f(u32(arg(1)), ptr(k), uint32(len(k)), ptr(v), uint32(len(v)))))
	case "hdr_remove":
		k := []byte(arg(2))
		res(st(proxyRemoveHeaderMapValue(u32(arg(1)), ptr(k), uint32(len(k)))))
	case "hdr_pairs":
		var p, n uint32
		s := proxyGetHeaderMapPairs(u32(arg(1)), ptrOf(&p), ptrOf(&n))
		res(st(s) + " " + deserializePairs(fromHost(p, n)))
	case "hdr_setpairs":
		b := serializePairs(op[2])
		res(st(proxySetHeaderMapPairs(u32(arg(1)), ptr(b), uint32(len(b)))))
	case "hdr_size":
		var n uint32
		s := proxyGetHeaderMapSize(u32(arg(1)), ptrOf(&n))
		res(st(s) + " size=" + strconv.Itoa(int(n)))
	case "buf_get":
		var p, n uint32
		s := proxyGetBufferBytes(u32(arg(1)), u32(arg(2)), u32(arg(3)), ptrOf(&p), ptrOf(&n))
		res(st(s) + " " + string(fromHost(p, n)))
	case "buf_set":
		d := []byte(arg(4))
		res(st(proxySetBufferBytes(u32(arg(1)), u32(arg(2)), u32(arg(3)), ptr(d), uint32(len(d)))))
	case "buf_status":
		var n, f uint32
		s := proxyGetBufferStatus(u32(arg(1)), ptrOf(&n), ptrOf(&f))
		res(st(s) + " size=" + strconv.Itoa(int(n)) + " flags=" + strconv.Itoa(int(f)))
	case "local":
		// local STATUS BODY DETAILS PAIRS GRPC
		body, det, hs := []byte(arg(2)), []byte(arg(3)), serializePairs(op[4])
		grpc, _ := strconv.Atoi(arg(5))
		res(st(proxySendLocalResponse(u32(arg(1)), ptr(det), uint32(len(det)), ptr(body), uint32(len(body)),
			ptr(hs), uint32(len(hs)), int32(grpc))))
	case "http_call":
		// http_call CLUSTER PAIRS BODY TIMEOUT_MS
		up, hs, body := []byte(arg(1)), serializePairs(op[2]), []byte(arg(3))
		var id uint32
		s := proxyHTTPCall(ptr(up), uint32(len(up)), ptr(hs), uint32(len(hs)), ptr(body), uint32(len(body)), 0, 0, u32(arg(4)), ptrOf(&id))
		res(st(s) + " id=" + strconv.Itoa(int(id)))
	case "grpc_call":
		// grpc_call CLUSTER SERVICE METHOD MSG TIMEOUT_MS
		up, svc, m, msg := []byte(arg(1)), []byte(arg(2)), []byte(arg(3)), []byte(arg(4))
		var id uint32
		s := proxyGRPCCall(ptr(up), uint32(len(up)), ptr(svc), uint32(len(svc)), ptr(m), uint32(len(m)), 0, 0,
			ptr(msg), uint32(len(msg)), u32(arg(5)), ptrOf(&id))
		res(st(s) + " id=" + strconv.Itoa(int(id)))
	case "grpc_stream":
		// grpc_stream CLUSTER SERVICE METHOD [METADATA_PAIRS]
		up, svc, m, md := []byte(arg(1)), []byte(arg(2)), []byte(arg(3)), serializePairs(arg(4))
		var id uint32
		s := proxyGRPCStream(ptr(up), uint32(len(up)), ptr(svc), uint32(len(svc)), ptr(m), uint32(len(m)), ptr(md), uint32(len(md)), ptrOf(&id))
		res(st(s) + " id=" + strconv.Itoa(int(id)))
	case "grpc_send", "grpc_send_hex":
		// grpc_send ID MSG EOS; grpc_send_hex takes MSG in hex (protobuf).
		m := []byte(arg(2))
		if name == "grpc_send_hex" {
			m = unhex(arg(2))
		}
		res(st(proxyGRPCSend(u32(arg(1)), ptr(m), uint32(len(m)), u32(arg(3)))))
	case "grpc_cancel":
		res(st(proxyGRPCCancel(u32(arg(1)))))
	case "grpc_close":
		res(st(proxyGRPCClose(u32(arg(1)))))
	case "continue":
		res(st(proxyContinueStream(u32(arg(1)))))
	case "close":
		res(st(proxyCloseStream(u32(arg(1)))))
	case "status":
		var code, p, n uint32
		s := proxyGetStatus(ptrOf(&code), ptrOf(&p), ptrOf(&n))
		res(st(s) + " code=" + strconv.Itoa(int(code)) + " " + string(fromHost(p, n)))
	case "effective":
		id := lastStream
		if arg(1) == "root" {
			id = rootID
		} else if arg(1) != "" {
			id = u32(arg(1))
		}
		res(st(proxySetEffectiveContext(id)))
	case "shared_get":
		k := []byte(arg(1))
		var p, n, cas uint32
		s := proxyGetSharedData(ptr(k), uint32(len(k)), ptrOf(&p), ptrOf(&n), ptrOf(&cas))
		res(st(s) + " " + string(fromHost(p, n)) + " cas=" + strconv.Itoa(int(cas)))
	case "shared_set":
		k, v := []byte(arg(1)), []byte(arg(2))
		res(st(proxySetSharedData(ptr(k), uint32(len(k)), ptr(v), uint32(len(v)), u32(arg(3)))))
	case "q_register":
		n := []byte(arg(1))
		var id uint32
		s := proxyRegisterSharedQueue(ptr(n), uint32(len(n)), ptrOf(&id))
		lastQueue = id
		res(st(s) + " id=" + strconv.Itoa(int(id)))
	case "q_resolve":
		vm, n := []byte(arg(1)), []byte(arg(2))
		var id uint32
		s := proxyResolveSharedQueue(ptr(vm), uint32(len(vm)), ptr(n), uint32(len(n)), ptrOf(&id))
		res(st(s) + " id=" + strconv.Itoa(int(id)))
	case "q_enqueue":
		v := []byte(arg(2))
		res(st(proxyEnqueueSharedQueue(u32(arg(1)), ptr(v), uint32(len(v)))))
	case "q_dequeue":
		var p, n uint32
		id := lastQueue
		if arg(1) != "" {
			id = u32(arg(1))
		}
		s := proxyDequeueSharedQueue(id, ptrOf(&p), ptrOf(&n))
		res(st(s) + " " + string(fromHost(p, n)))
	case "m_define":
		n := []byte(arg(2))
		var id uint32
		s := proxyDefineMetric(u32(arg(1)), ptr(n), uint32(len(n)), ptrOf(&id))
		metricIDs[arg(2)] = id
		res(st(s))
	case "m_inc":
		d, _ := strconv.ParseInt(arg(2), 10, 64)
		res(st(proxyIncrementMetric(metricIDs[arg(1)], d)))
	case "m_record":
		v, _ := strconv.ParseUint(arg(2), 10, 64)
		res(st(proxyRecordMetric(metricIDs[arg(1)], v)))
	case "m_get":
		var v uint64
		s := proxyGetMetric(metricIDs[arg(1)], ptrOf(&v))
		res(st(s) + " value=" + strconv.FormatUint(v, 10))
	case "prop_get", "prop_geti":
		p := path(arg(1))
		var vp, vn uint32
		s := proxyGetProperty(ptr(p), uint32(len(p)), ptrOf(&vp), ptrOf(&vn))
		v := fromHost(vp, vn)
		if name == "prop_geti" && len(v) == 8 {
			res(st(s) + " " + strconv.FormatInt(int64(binary.LittleEndian.Uint64(v)), 10))
		} else {
			res(st(s) + " " + strings.ReplaceAll(string(v), "\x00", "/"))
		}
	case "prop_set":
		p, v := path(arg(1)), []byte(arg(2))
		res(st(proxySetProperty(ptr(p), uint32(len(p)), ptr(v), uint32(len(v)))))
	case "ffi":
		n, a := []byte(arg(1)), []byte(arg(2))
		var rp, rn uint32
		s := proxyCallForeignFunction(ptr(n), uint32(len(n)), ptr(a), uint32(len(a)), ptrOf(&rp), ptrOf(&rn))
		r := fromHost(rp, rn)
		res(st(s) + " len=" + strconv.Itoa(len(r)) + " " + strconv.Quote(string(r)))
	case "ffi_roundtrip":
		// compress then uncompress a payload, proving the zlib pair agrees.
		n, a := []byte("compress"), []byte(arg(1))
		var rp, rn uint32
		s := proxyCallForeignFunction(ptr(n), uint32(len(n)), ptr(a), uint32(len(a)), ptrOf(&rp), ptrOf(&rn))
		c := append([]byte(nil), fromHost(rp, rn)...)
		n = []byte("uncompress")
		s2 := proxyCallForeignFunction(ptr(n), uint32(len(n)), ptr(c), uint32(len(c)), ptrOf(&rp), ptrOf(&rn))
		res(st(s) + " " + st(s2) + " " + string(fromHost(rp, rn)))
	case "done":
		res(st(proxyDone()))
	case "badptr":
		// Pointers far outside linear memory must come back as
		// InvalidMemoryAccess, never crash the host.
		const bad = 0xfffffff0
		res(st(proxyLog(2, bad, 100)) + " " + st(proxyGetHeaderMapPairs(0, bad, bad)) + " " +
			st(proxyGetCurrentTime(bad)) + " " + st(proxySetHeaderMapPairs(0, bad, 64)))
	default:
		res("unknown op")
	}
}
