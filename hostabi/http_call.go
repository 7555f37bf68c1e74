package hostabi

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

func hcHTTPCall(ctx context.Context, in *instance, a []uint64) abi.Status {
	upstream, err := in.readString(u32(a[0]), u32(a[1]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	hb, err := in.read(u32(a[2]), u32(a[3]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	body, err := in.read(u32(a[4]), u32(a[5]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	tb, err := in.read(u32(a[6]), u32(a[7]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if !in.fits(u32(a[9]), 4) {
		return abi.InvalidMemoryAccess
	}
	headers, err := deserializePairs(hb)
	if err != nil {
		return abi.SerializationFailure
	}
	trailers, err := deserializePairs(tb)
	if err != nil {
		return abi.SerializationFailure
	}
	// Envoy refuses a call it could not route: these three must be
	// present (Context::httpCall checks for the entries, not their values:
	// an empty :authority is allowed).
	var method, path, authority bool
	for _, kv := range headers {
		switch kv[0] {
		case ":method":
			method = true
		case ":path":
			path = true
		case ":authority":
			authority = true
		}
	}
	if !method || !path || !authority {
		return abi.BadArgument
	}
	if int32(u32(a[8])) < 0 {
		// Envoy reads the timeout as a signed int and refuses negatives.
		return abi.BadArgument
	}
	req := HTTPCallRequest{Cluster: upstream, Headers: headers, Body: append([]byte(nil), body...),
		Trailers: trailers, Timeout: time.Duration(u32(a[8])) * time.Millisecond}
	id, st := in.dispatch(req, false)
	if st != abi.OK {
		return st
	}
	_ = in.putU32(u32(a[9]), id)
	return abi.OK
}

// dispatch starts a call whose reply goes to the root context, as Envoy
// delivers http_call replies to the root context that made them.
func (in *instance) dispatch(req HTTPCallRequest, grpc bool) (uint32, abi.Status) {
	caller := in.vm.e.cfg.HTTP
	p := in.pluginFor(in.effective)
	if caller == nil || p == nil {
		return 0, abi.BadArgument
	}
	if in.retiredRoot() {
		p.log.Debug("http_call refused: the root context's instance is retired", zap.String("cluster", req.Cluster))
		return 0, abi.InternalFailure
	}
	id := in.nextCallID(1, !grpc)
	in.callouts[id] = &callout{root: in.rootFor(in.effective), grpc: grpc, due: in.calloutDue(req.Timeout)}
	err := caller.HTTPCall(p.ctx, req, func(resp HTTPCallResponse, err error) {
		// Never deliver on the dispatching goroutine: it holds the instance.
		go in.deliver(id, resp, err)
	})
	if err != nil {
		delete(in.callouts, id)
		if errors.Is(err, ErrUnknownCluster) {
			if grpc {
				// Envoy's grpc_call answers an unknown cluster this way,
				// kept for ABI 0.1.x callers.
				return 0, abi.ParseFailure
			}
			return 0, abi.BadArgument
		}
		p.log.Warn("http_call dispatch failed", zap.String("cluster", req.Cluster), zap.Error(err))
		return 0, abi.InternalFailure
	}
	return id, abi.OK
}

func (in *instance) deliver(id uint32, resp HTTPCallResponse, err error) {
	in.mu.Lock()
	co := in.callouts[id]
	delete(in.callouts, id)
	defer in.calloutEnded()
	if co == nil || co.cancelled || in.broken != nil || in.roots[co.root] == nil {
		in.mu.Unlock()
		return
	}
	in.effective = co.root
	if co.grpc {
		in.deliverGRPC(co.root, id, resp, err)
	} else if err != nil {
		if ce := in.vm.log.Check(zap.DebugLevel, "http_call failed"); ce != nil {
			ce.Write(zap.Uint32("call_id", id), zap.Error(err))
		}
		in.cur = callData{}
		_, _ = in.call(cbHTTPCallResponse, uint64(co.root), uint64(id), 0, 0, 0)
	} else {
		if resp.Headers == nil {
			resp.Headers = [][2]string{}
		}
		in.cur = callData{httpHeaders: resp.Headers, httpBody: resp.Body, httpTrailers: resp.Trailers}
		_, _ = in.call(cbHTTPCallResponse, uint64(co.root), uint64(id),
			uint64(len(resp.Headers)), uint64(len(resp.Body)), uint64(len(resp.Trailers)))
	}
	in.cur = callData{}
	in.unlock()
}
