package hostabi

import (
	"context"
	"encoding/binary"
	"strconv"
	"time"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// Unary gRPC calls ride on HTTPCaller: a unary call is an HTTP/2 POST with
// a length-prefixed message, so the proxy needs no second client. Streams
// need a GRPCStreamer (grpc_stream.go).

const (
	grpcUnknown     = 2
	grpcUnavailable = 14
)

func hcGRPCCall(ctx context.Context, in *instance, a []uint64) abi.Status {
	var s [5]string
	for i := range 4 {
		v, err := in.readString(u32(a[2*i]), u32(a[2*i+1]))
		if err != nil {
			return abi.InvalidMemoryAccess
		}
		s[i] = v
	}
	msg, err := in.read(u32(a[8]), u32(a[9]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if !in.fits(u32(a[11]), 4) {
		return abi.InvalidMemoryAccess
	}
	md, err := deserializePairs([]byte(s[3]))
	if err != nil {
		return abi.SerializationFailure
	}
	if s[0] == "" || s[1] == "" || s[2] == "" {
		return abi.BadArgument
	}
	timeout := time.Duration(u32(a[10])) * time.Millisecond
	headers := [][2]string{
		{":method", "POST"}, {":path", "/" + s[1] + "/" + s[2]}, {":authority", s[0]}, {":scheme", "http"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	}
	if timeout > 0 {
		headers = append(headers, [2]string{"grpc-timeout", strconv.FormatInt(timeout.Milliseconds(), 10) + "m"})
	}
	headers = append(headers, md...)
	body := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:], uint32(len(msg)))
	body = append(body, msg...)
	id, st := in.dispatch(HTTPCallRequest{Cluster: s[0], Headers: headers, Body: body, Timeout: timeout}, true)
	if st != abi.OK {
		return st
	}
	_ = in.putU32(u32(a[11]), id)
	return abi.OK
}

// hcGRPCCancel aborts a call or stream: no callback follows and the token
// is forgotten (Envoy's Context::grpcCancel).
func hcGRPCCancel(_ context.Context, in *instance, a []uint64) abi.Status {
	id := u32(a[0])
	co := in.callouts[id]
	if co == nil || !co.grpc {
		return abi.NotFound
	}
	if co.stream != nil {
		co.reset()
		delete(in.callouts, id)
		return abi.OK
	}
	co.cancelled = true
	return abi.OK
}

// hcGRPCClose cancels a call, as Envoy does, and half-closes a stream
// (grpc_stream.go).
func hcGRPCClose(ctx context.Context, in *instance, a []uint64) abi.Status {
	id := u32(a[0])
	if co := in.callouts[id]; co != nil && co.stream != nil {
		return in.closeStream(id, co)
	}
	return hcGRPCCancel(ctx, in, a)
}

// deliverGRPC replays a unary reply as Envoy's callbacks: initial
// metadata, each message, trailing metadata, close. Callers hold mu.
func (in *instance) deliverGRPC(root, id uint32, resp HTTPCallResponse, err error) {
	code, msg := uint32(0), ""
	if err != nil {
		code, msg = grpcUnavailable, err.Error()
	} else {
		if resp.Headers == nil {
			resp.Headers = [][2]string{}
		}
		status, grpcStatus := "", ""
		for _, kv := range append(resp.Headers[:len(resp.Headers):len(resp.Headers)], resp.Trailers...) {
			switch kv[0] {
			case ":status":
				status = kv[1]
			case "grpc-status":
				grpcStatus = kv[1]
			case "grpc-message":
				msg = kv[1]
			}
		}
		code = grpcUnknown
		if n, err := strconv.Atoi(grpcStatus); err == nil {
			code = uint32(n)
		} else if status != "200" && status != "" {
			code = grpcUnavailable
		}
		in.cur = callData{httpHeaders: resp.Headers, httpTrailers: resp.Trailers}
		if _, err := in.call(cbGRPCInitialMetadata, uint64(root), uint64(id), uint64(len(resp.Headers))); err != nil {
			return
		}
		b := resp.Body
		for len(b) >= 5 {
			n := binary.BigEndian.Uint32(b[1:])
			if uint64(n) > uint64(len(b)-5) {
				break
			}
			in.cur.grpcBody = append([]byte{}, b[5:5+n]...)
			if _, err := in.call(cbGRPCReceive, uint64(root), uint64(id), uint64(n)); err != nil {
				return
			}
			b = b[5+n:]
		}
		in.cur.grpcBody = nil
		if _, err := in.call(cbGRPCTrailingMetadata, uint64(root), uint64(id), uint64(len(resp.Trailers))); err != nil {
			return
		}
	}
	in.cur = callData{statusCode: code, statusMsg: msg}
	_, _ = in.call(cbGRPCClose, uint64(root), uint64(id), uint64(code))
}
