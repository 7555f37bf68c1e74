package hostabi

import (
	"context"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// continueStream resumes a half of the effective stream. Inside that
// stream's own callback it only turns the callback's Pause into Continue;
// from elsewhere (an http_call reply, a tick, a queue) it resumes the
// paused chain once the instance is released.
func (in *instance) continueStream(t abi.StreamType) abi.Status {
	s := in.stream()
	if s == nil {
		return abi.NotFound
	}
	if s.network != (t >= abi.StreamDownstream) || t > abi.StreamUpstream {
		// HTTP streams have request and response halves, connections
		// downstream and upstream ones.
		return abi.BadArgument
	}
	if s.active {
		s.resumed[t&1] = true
		return abi.OK
	}
	host := s.host
	s.queued.Add(1)
	in.pending = append(in.pending, func() { host.Resume(t); s.queued.Add(-1) })
	return abi.OK
}

func hcContinueStream(_ context.Context, in *instance, a []uint64) abi.Status {
	return in.continueStream(abi.StreamType(a[0]))
}

// hcContinueRequest and hcContinueResponse are ABI 0.1.0's continue_stream.
func hcContinueRequest(_ context.Context, in *instance, _ []uint64) abi.Status {
	return in.continueStream(abi.StreamHTTPRequest)
}

func hcContinueResponse(_ context.Context, in *instance, _ []uint64) abi.Status {
	return in.continueStream(abi.StreamHTTPResponse)
}

// hcClearRouteCache (0.1.0) is a no-op: routes are matched again after
// the request filters anyway (the backend is picked after them).
func hcClearRouteCache(context.Context, *instance, []uint64) abi.Status { return abi.OK }

func hcCloseStream(_ context.Context, in *instance, a []uint64) abi.Status {
	s := in.stream()
	if s == nil {
		return abi.NotFound
	}
	t := abi.StreamType(a[0])
	if s.network != (t >= abi.StreamDownstream) || t > abi.StreamUpstream {
		return abi.BadArgument
	}
	s.replied = true
	host := s.host
	s.queued.Add(1)
	in.pending = append(in.pending, func() { host.Close(t); s.queued.Add(-1) })
	return abi.OK
}

func hcSendLocalResponse(_ context.Context, in *instance, a []uint64) abi.Status {
	details, err := in.readString(u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	body, err := in.read(u32(a[3]), u32(a[4]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	hb, err := in.read(u32(a[5]), u32(a[6]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	headers, err := deserializePairs(hb)
	if err != nil {
		return abi.SerializationFailure
	}
	s := in.stream()
	if s == nil || s.network {
		return abi.NotFound
	}
	status := int(u32(a[0]))
	if status < 100 || status > 999 {
		return abi.BadArgument
	}
	if s.replied {
		// Envoy ignores a second local reply on the same stream.
		return abi.OK
	}
	s.replied = true
	r := LocalResponse{Status: status, Details: details, Body: append([]byte(nil), body...),
		Headers: headers, GRPCStatus: int(int32(u32(a[7])))}
	host := s.host
	s.queued.Add(1)
	in.pending = append(in.pending, func() { host.SendLocalResponse(r); s.queued.Add(-1) })
	return abi.OK
}

// hcGetStatus reports the status of the gRPC call whose callback runs.
func hcGetStatus(ctx context.Context, in *instance, a []uint64) abi.Status {
	if err := in.putU32(u32(a[0]), in.cur.statusCode); err != nil {
		return abi.InvalidMemoryAccess
	}
	return in.returnBytes(ctx, []byte(in.cur.statusMsg), u32(a[1]), u32(a[2]))
}
