package hostabi

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// Bidirectional gRPC streams (proxy_grpc_stream, proxy_grpc_send,
// proxy_grpc_close, proxy_grpc_cancel) with Envoy's semantics
// (source/extensions/common/wasm/context.cc):
//   - stream tokens are even and gRPC call tokens odd, so grpc_send on a
//     call's token is BadArgument and an unknown token NotFound;
//   - proxy_grpc_close half-closes the local side; the upstream may go on
//     sending, and the token lives until the remote side has closed too;
//   - proxy_grpc_cancel resets the stream and forgets the token: no callback
//     follows;
//   - the upstream's events reach the root context that opened the stream
//     in order: initial metadata, messages (buffer GRPC_CALL_MESSAGE),
//     trailing metadata, close with the status (proxy_get_status has the
//     message); the metadata maps are readable as GRPC_RECEIVE_INITIAL_
//     METADATA and GRPC_RECEIVE_TRAILING_METADATA during their callbacks.

// grpcStreamState is a stream's side of its callout.
type grpcStreamState struct {
	s GRPCStream
	// localClosed: proxy_grpc_close was called; sentEOS: a message with
	// end_of_stream (or the close) half-closed the local side;
	// remoteClosed: proxy_on_grpc_close was delivered.
	localClosed, sentEOS, remoteClosed bool
}

// reset aborts a stream callout; other callouts have nothing to abort.
func (co *callout) reset() {
	if co.stream != nil && co.stream.s != nil {
		co.stream.s.Reset()
	}
}

// streamer is the configured GRPCStreamer, nil for none.
func (e *Engine) streamer() GRPCStreamer {
	if e.cfg.GRPC != nil {
		return e.cfg.GRPC
	}
	if s, ok := e.cfg.HTTP.(GRPCStreamer); ok {
		return s
	}
	return nil
}

// nextCallID picks an unused callout id: any for http_call, odd for a gRPC
// call, even for a gRPC stream (Envoy's token scheme).
func (in *instance) nextCallID(parity uint32, any bool) uint32 {
	for {
		in.nextCall++
		id := in.nextCall
		if id == 0 || (!any && id&1 != parity) || in.callouts[id] != nil {
			continue
		}
		return id
	}
}

func hcGRPCStream(_ context.Context, in *instance, a []uint64) abi.Status {
	var s [4]string
	for i := range s {
		v, err := in.readString(u32(a[2*i]), u32(a[2*i+1]))
		if err != nil {
			return abi.InvalidMemoryAccess
		}
		s[i] = v
	}
	if !in.fits(u32(a[8]), 4) {
		return abi.InvalidMemoryAccess
	}
	md, err := deserializePairs([]byte(s[3]))
	if err != nil {
		return abi.SerializationFailure
	}
	streamer := in.vm.e.streamer()
	if streamer == nil {
		return abi.Unimplemented
	}
	p := in.pluginFor(in.effective)
	if p == nil || s[1] == "" || s[2] == "" {
		return abi.BadArgument
	}
	if in.retiredRoot() {
		p.log.Debug("grpc_stream refused: the root context's instance is retired", zap.String("cluster", s[0]))
		return abi.InternalFailure
	}
	id := in.nextCallID(0, false)
	co := &callout{root: in.rootFor(in.effective), grpc: true, stream: &grpcStreamState{}}
	in.callouts[id] = co
	// Events wait for mu, which this hostcall holds: none can arrive
	// before the stream is in place.
	st, err := streamer.GRPCStream(p.ctx, GRPCStreamRequest{Cluster: s[0], Service: s[1], Method: s[2], Metadata: md},
		&grpcEvents{in: in, id: id})
	if err != nil {
		delete(in.callouts, id)
		if errors.Is(err, ErrUnknownCluster) {
			// As Envoy's grpc_call and grpc_stream, kept for ABI 0.1.x.
			return abi.ParseFailure
		}
		p.log.Warn("grpc_stream failed to open", zap.String("cluster", s[0]), zap.Error(err))
		return abi.InternalFailure
	}
	co.stream.s = st
	_ = in.putU32(u32(a[8]), id)
	return abi.OK
}

func hcGRPCSend(_ context.Context, in *instance, a []uint64) abi.Status {
	msg, err := in.read(u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	id := u32(a[0])
	if id&1 == 1 {
		// A gRPC call's token.
		return abi.BadArgument
	}
	co := in.callouts[id]
	if co == nil || co.stream == nil {
		return abi.NotFound
	}
	st := co.stream
	if st.sentEOS {
		// Envoy leaves this undefined (a send on a half-closed stream);
		// sluice refuses it.
		return abi.BadArgument
	}
	if st.remoteClosed {
		// The upstream is done: nothing would read it.
		return abi.OK
	}
	eos := u32(a[3]) != 0
	if err := st.s.Send(append([]byte(nil), msg...), eos); err != nil {
		return abi.InternalFailure
	}
	st.sentEOS = eos
	return abi.OK
}

// closeStream: proxy_grpc_close on a stream half-closes it; the token is
// forgotten once both sides are closed.
func (in *instance) closeStream(id uint32, co *callout) abi.Status {
	st := co.stream
	if !st.sentEOS {
		st.s.CloseSend()
		st.sentEOS = true
	}
	if st.remoteClosed {
		delete(in.callouts, id)
	} else {
		st.localClosed = true
	}
	return abi.OK
}

// grpcEvents delivers one stream's events to its root context.
type grpcEvents struct {
	in *instance
	id uint32
}

// deliver runs f for a live stream with its root context effective and
// drops the event otherwise (cancelled, root context gone, instance
// broken).
func (e *grpcEvents) deliver(f func(in *instance, co *callout)) {
	in := e.in
	in.mu.Lock()
	co := in.callouts[e.id]
	if co == nil || co.stream == nil || co.stream.remoteClosed || in.broken != nil || in.roots[co.root] == nil {
		in.mu.Unlock()
		return
	}
	in.effective = co.root
	f(in, co)
	in.cur = callData{}
	in.unlock()
	// A callback may have made or answered the callout a retired
	// instance waited for.
	in.calloutEnded()
}

func (e *grpcEvents) InitialMetadata(md [][2]string) {
	e.deliver(func(in *instance, co *callout) {
		if md == nil {
			md = [][2]string{}
		}
		in.cur = callData{httpHeaders: md}
		_, _ = in.call(cbGRPCInitialMetadata, uint64(co.root), uint64(e.id), uint64(len(md)))
	})
}

func (e *grpcEvents) Message(msg []byte) {
	e.deliver(func(in *instance, co *callout) {
		if msg == nil {
			msg = []byte{}
		}
		in.cur = callData{grpcBody: msg}
		_, _ = in.call(cbGRPCReceive, uint64(co.root), uint64(e.id), uint64(len(msg)))
	})
}

func (e *grpcEvents) TrailingMetadata(md [][2]string) {
	e.deliver(func(in *instance, co *callout) {
		if md == nil {
			md = [][2]string{}
		}
		// The trailing map is read through httpTrailers; httpHeaders only
		// marks that a metadata callback runs.
		in.cur = callData{httpHeaders: [][2]string{}, httpTrailers: md}
		_, _ = in.call(cbGRPCTrailingMetadata, uint64(co.root), uint64(e.id), uint64(len(md)))
	})
}

func (e *grpcEvents) Close(status int, message string) {
	e.deliver(func(in *instance, co *callout) {
		co.stream.remoteClosed = true
		in.cur = callData{statusCode: uint32(status), statusMsg: message}
		_, _ = in.call(cbGRPCClose, uint64(co.root), uint64(e.id), uint64(uint32(status)))
		if co.stream.localClosed && in.callouts[e.id] == co {
			delete(in.callouts, e.id)
		}
	})
}
