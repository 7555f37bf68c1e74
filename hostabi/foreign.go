package hostabi

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"io"
	"net"
	"time"
	"unsafe"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// foreignFuncs are Envoy's foreign functions that filters use. Each gets
// the arguments and returns the result bytes.
var foreignFuncs = map[string]func(in *instance, args []byte) ([]byte, abi.Status){
	"compress": func(in *instance, args []byte) ([]byte, abi.Status) {
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		if _, err := w.Write(args); err != nil {
			return nil, abi.InternalFailure
		}
		if err := w.Close(); err != nil {
			return nil, abi.InternalFailure
		}
		return b.Bytes(), abi.OK
	},
	"uncompress": func(in *instance, args []byte) ([]byte, abi.Status) {
		r, err := zlib.NewReader(bytes.NewReader(args))
		if err != nil {
			return nil, abi.SerializationFailure
		}
		// Bounded by the instance's memory: a zip bomb must not cost the host.
		out, err := io.ReadAll(io.LimitReader(r, int64(in.memory.limit)+1))
		if err != nil {
			return nil, abi.SerializationFailure
		}
		if uint64(len(out)) > in.memory.limit {
			return nil, abi.ResultMismatch
		}
		return out, abi.OK
	},
	// declare_property (Envoy: a typed, lifespan-scoped filter state
	// declaration) has nothing to declare here: properties are untyped
	// bytes, so accepting it lets filters that call it run.
	"declare_property": func(*instance, []byte) ([]byte, abi.Status) { return nil, abi.OK },
	"resolve_lua":      resolveLua,
	// sluice_skip_callbacks is sluice's own, for SDKs: see skipCallbacks.
	"sluice_skip_callbacks": skipCallbacks,
	foreignVerifySignature:  verifySignature, // signature.go
}

// foreignViewFuncs are foreign functions that take their argument as a
// view of guest memory, valid for the call only (they keep nothing of it
// and call nothing that could move or change it): the per-request ones,
// which then cost no copy.
// They are found by a switch rather than a map: a look-up in a map of
// strings cost about 170 instructions, twice a Kong request. A variable,
// so that a test can take them away (as on a host without them).
var foreignViewFuncs = func(name []byte) func(in *instance, args []byte) ([]byte, abi.Status) {
	switch unsafe.String(unsafe.SliceData(name), len(name)) { // compared only
	case foreignAddHeaders:
		return addHeaders // foreign_headers.go
	case foreignReplaceHeaders:
		return replaceHeaders // foreign_headers.go
	case foreignDeferResponseHeaders:
		return deferResponseHeaders // foreign_deferred.go; copies what it keeps
	}
	return nil
}

// skipCallbacks lets an SDK tell the host which HTTP stream callbacks of
// the calling plugin run only its no-op defaults, so the host answers them
// Continue without entering the guest (each entry into a Go guest costs
// microseconds). The argument is a little-endian u32; its bits, from bit
// 0: on_request_headers, _body, _trailers, on_response_headers, _body,
// _trailers, on_log; bit 7 is on_done of an HTTP stream context, for an
// SDK whose stream contexts answer it true and do nothing else (the host
// then calls on_delete alone: one guest entry less per stream). Root
// contexts always get their on_done. It replaces the plugin's mask in
// this instance (0 restores every call). Other hosts answer NotFound and
// the SDK goes on as before. A plugin's declaration that it defers
// response-header edits (foreign_deferred.go) is kept across calls.
//
// Bit 8 says the SDK releases a stream's context itself when told that a
// headers callback is the stream's last entry into the guest (bit 1 of
// the callback's end_of_stream argument, set only for such an SDK): if
// the callback continues the stream and the guest keeps nothing for it,
// the guest frees the context and sets bit 8 of its result, and the host
// then skips proxy_on_delete (one guest entry less per stream). A guest
// that pauses, or has a call out, keeps the context and gets its
// on_delete.
func skipCallbacks(in *instance, args []byte) ([]byte, abi.Status) {
	if len(args) != 4 {
		return nil, abi.BadArgument
	}
	p := in.pluginFor(in.effective)
	rc := in.roots[in.rootOf[p]]
	if p == nil || rc == nil {
		return nil, abi.NotFound
	}
	rc.skip = rc.skip&deferredEdits | (binary.LittleEndian.Uint32(args)&(1<<skipBits-1))<<cbRequestHeaders
	return nil, abi.OK
}

// skipBits: on_request_headers through on_done, in callback order, and
// bit 8 (the SDK releases a stream's context itself), which lands on
// cbDelete.
const skipBits = cbDelete - cbRequestHeaders + 1

// Envoy never calls proxy_on_foreign_function outside its own tests (only
// wasm_test.cc drives ContextBase::onForeignFunction), so sluice follows
// the one host that does: Kong's ngx_wasm_module, whose "resolve_lua"
// foreign function resolves a name in the background and hands the answer
// to proxy_on_foreign_function (ngx_proxy_wasm_foreign_call.c):
//   - an IP literal is answered at once: the address bytes (4 or 16) are
//     the call's result;
//   - any other name: the call returns Ok with no result, and once the
//     lookup ends the context that called (stream or root) gets
//     proxy_on_foreign_function(context_id, 0, size) with
//     FOREIGN_FUNCTION_ARGUMENTS (buffer 8) holding one byte of address
//     length (0: not found), the address, then the name.
// The stream is not paused for it: a filter that needs the answer returns
// Pause and continues from the callback, as after an http_call.

// foreignResolveLua is resolve_lua's function id, as Kong numbers it.
const foreignResolveLua = 0

// resolveTimeout bounds a resolve_lua lookup.
const resolveTimeout = 5 * time.Second

func resolveLua(in *instance, args []byte) ([]byte, abi.Status) {
	name := string(args)
	if name == "" {
		return nil, abi.BadArgument
	}
	if ip := net.ParseIP(name); ip != nil {
		return ipBytes(ip), abi.OK
	}
	p := in.pluginFor(in.effective)
	if p == nil {
		return nil, abi.BadArgument
	}
	var r Resolver = net.DefaultResolver
	if in.vm.e.cfg.Resolver != nil {
		r = in.vm.e.cfg.Resolver
	}
	id := in.effective
	go func() {
		ctx, cancel := context.WithTimeout(p.ctx, resolveTimeout)
		addrs, err := r.LookupHost(ctx, name)
		cancel()
		var addr []byte
		if err == nil {
			for _, a := range addrs {
				if ip := net.ParseIP(a); ip != nil {
					addr = ipBytes(ip)
					break
				}
			}
		}
		out := append([]byte{byte(len(addr))}, addr...)
		in.deliverForeign(id, foreignResolveLua, append(out, name...))
	}()
	return nil, abi.OK
}

func ipBytes(ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip.To16()
}

// deliverForeign calls proxy_on_foreign_function on a context that still
// exists, with args in FOREIGN_FUNCTION_ARGUMENTS.
func (in *instance) deliverForeign(id, fid uint32, args []byte) {
	in.mu.Lock()
	if in.broken != nil || in.mod == nil {
		in.mu.Unlock()
		return
	}
	if in.roots[id] == nil {
		if s := in.streams.get(id); s == nil || s.done {
			in.mu.Unlock()
			return
		}
	}
	in.effective = id
	in.cur = callData{foreignArgs: args}
	_, _ = in.call(cbForeignFunction, uint64(id), uint64(fid), uint64(len(args)))
	in.cur = callData{}
	in.unlock()
}

func hcCallForeignFunction(ctx context.Context, in *instance, a []uint64) abi.Status {
	name, err := in.read(u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	args, err := in.read(u32(a[2]), u32(a[3]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	// m[string(b)] looks up without converting b.
	var out []byte
	var st abi.Status
	if f := foreignViewFuncs(name); f != nil {
		out, st = f(in, args)
	} else if f := foreignFuncs[string(name)]; f != nil {
		out, st = f(in, append([]byte(nil), args...))
	} else {
		return abi.NotFound
	}
	if st != abi.OK {
		return st
	}
	return in.returnBytes(ctx, out, u32(a[4]), u32(a[5]))
}
