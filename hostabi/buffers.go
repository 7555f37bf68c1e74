package hostabi

import (
	"context"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// buffer returns a pointer to the bytes of a buffer for the effective
// context, nil when it does not exist there.
func (in *instance) buffer(t abi.BufferType) (*[]byte, bool) {
	switch t {
	case abi.BufferVMConfiguration:
		return &in.vm.cfg.VMConfig, false
	case abi.BufferPluginConfiguration:
		if p := in.pluginFor(in.effective); p != nil {
			return &p.cfg.PluginConfig, false
		}
		return nil, false
	case abi.BufferHTTPCallResponseBody:
		if in.cur.httpHeaders == nil {
			return nil, false
		}
		return &in.cur.httpBody, true
	case abi.BufferGRPCReceive:
		if in.cur.grpcBody == nil {
			return nil, false
		}
		return &in.cur.grpcBody, true
	case abi.BufferForeignFunctionArgs:
		if in.cur.foreignArgs == nil {
			return nil, false
		}
		return &in.cur.foreignArgs, false
	case abi.BufferHTTPRequestBody, abi.BufferHTTPResponseBody, abi.BufferDownstreamData, abi.BufferUpstreamData:
		s := in.stream()
		if s == nil || !s.hasBody[t] {
			return nil, false
		}
		return &s.body[t], true
	}
	return nil, false
}

func hcGetBufferBytes(ctx context.Context, in *instance, a []uint64) abi.Status {
	t := abi.BufferType(a[0])
	if t > abi.BufferForeignFunctionArgs {
		// An unknown type is a bad argument; NotFound is for a known
		// buffer this context lacks (proxy-wasm-cpp-host src/exports.cc).
		return abi.BadArgument
	}
	b, _ := in.buffer(t)
	if b == nil {
		return abi.NotFound
	}
	// As cpp-host (src/exports.cc): a start past the end reads nothing,
	// and nothing read is Ok with (0, 0) written and no guest allocation.
	start, size := uint64(u32(a[1])), uint64(u32(a[2]))
	start = min(start, uint64(len(*b)))
	end := min(start+size, uint64(len(*b)))
	if end == start {
		if in.putU32(u32(a[3]), 0) != nil || in.putU32(u32(a[4]), 0) != nil {
			return abi.InvalidMemoryAccess
		}
		return abi.OK
	}
	return in.returnBytes(ctx, (*b)[start:end], u32(a[3]), u32(a[4]))
}

// hcSetBufferBytes replaces the range [start, start+size) with data, so
// start 0 and size >= length replaces the whole buffer, size 0 inserts and
// start >= length appends (what Envoy's Buffer::copyFrom allows, and more).
func hcSetBufferBytes(_ context.Context, in *instance, a []uint64) abi.Status {
	data, err := in.read(u32(a[3]), u32(a[4]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	b, writable := in.buffer(abi.BufferType(a[0]))
	if b == nil {
		return abi.NotFound
	}
	if !writable {
		return abi.BadArgument
	}
	old := *b
	start := min(uint64(u32(a[1])), uint64(len(old)))
	end := min(start+uint64(u32(a[2])), uint64(len(old)))
	nb := make([]byte, 0, uint64(len(old))-(end-start)+uint64(len(data)))
	nb = append(nb, old[:start]...)
	nb = append(nb, data...)
	nb = append(nb, old[end:]...)
	*b = nb
	return abi.OK
}

// hcGetBufferStatus reports length and flags (bit 0: end of stream).
func hcGetBufferStatus(_ context.Context, in *instance, a []uint64) abi.Status {
	t := abi.BufferType(a[0])
	b, _ := in.buffer(t)
	if b == nil {
		return abi.NotFound
	}
	var flags uint32
	if t <= abi.BufferUpstreamData {
		if s := in.stream(); s != nil && s.bodyEOS[t] {
			flags = 1
		}
	}
	if in.putU32(u32(a[1]), uint32(len(*b))) != nil || in.putU32(u32(a[2]), flags) != nil {
		return abi.InvalidMemoryAccess
	}
	return abi.OK
}

// hcGetConfiguration is ABI 0.1.0's way to read the plugin configuration.
func hcGetConfiguration(ctx context.Context, in *instance, a []uint64) abi.Status {
	p := in.pluginFor(in.effective)
	if p == nil {
		return abi.NotFound
	}
	return in.returnBytes(ctx, p.cfg.PluginConfig, u32(a[0]), u32(a[1]))
}
