package hostabi

import (
	"bytes"
	"compress/zlib"
	"context"
	"io"

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
}

func hcCallForeignFunction(ctx context.Context, in *instance, a []uint64) abi.Status {
	name, err := readString(in.mem, u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	args, err := read(in.mem, u32(a[2]), u32(a[3]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	f := foreignFuncs[name]
	if f == nil {
		return abi.NotFound
	}
	out, st := f(in, append([]byte(nil), args...))
	if st != abi.OK {
		return st
	}
	return in.returnBytes(ctx, out, u32(a[4]), u32(a[5]))
}
