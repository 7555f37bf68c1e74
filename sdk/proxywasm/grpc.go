package proxywasm

import (
	"unsafe"

	"github.com/sluice-proxy/sluice/sdk/internal/abi"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// GrpcCallbacks receive the events of a gRPC call or stream. Any may be nil.
// They run like http_call callbacks: on the context that started the call.
type GrpcCallbacks struct {
	// OnInitialMetadata: read it with GetGrpcReceiveInitialMetadata.
	OnInitialMetadata func(numElements int)
	// OnMessage: read the message with GetGrpcReceiveBuffer(0, size).
	OnMessage func(size int)
	// OnTrailingMetadata: read it with GetGrpcReceiveTrailingMetadata.
	OnTrailingMetadata func(numElements int)
	// OnClose ends the call with a gRPC status (0 OK); GetStatus returns
	// its message.
	OnClose func(status uint32)
}

// DispatchGrpcCall makes a unary gRPC call to service/method on a cluster.
// message is the serialized request.
func DispatchGrpcCall(cluster, service, method string, initialMetadata [][2]string, message []byte,
	timeoutMillisecond uint32, cb GrpcCallbacks) (uint32, error) {
	rootID, ok := current.rootOf(current.active)
	if !ok {
		return 0, types.ErrorStatusBadArgument
	}
	md := serializeOptional(initialMetadata)
	var token uint32
	st := abi.ProxyGrpcCall(abi.StringPtr(cluster), uint32(len(cluster)), abi.StringPtr(service), uint32(len(service)),
		abi.StringPtr(method), uint32(len(method)), abi.BytesPtr(md), uint32(len(md)),
		abi.BytesPtr(message), uint32(len(message)), timeoutMillisecond, &token)
	if err := statusToError(st); err != nil {
		return 0, err
	}
	current.roots[rootID].grpc[token] = grpcCall{cb: cb, caller: current.active}
	return token, nil
}

// OpenGrpcStream opens a streaming gRPC call; send with
// SendGrpcStreamMessage.
func OpenGrpcStream(cluster, service, method string, initialMetadata [][2]string, cb GrpcCallbacks) (uint32, error) {
	rootID, ok := current.rootOf(current.active)
	if !ok {
		return 0, types.ErrorStatusBadArgument
	}
	md := serializeOptional(initialMetadata)
	var token uint32
	st := abi.ProxyGrpcStream(abi.StringPtr(cluster), uint32(len(cluster)), abi.StringPtr(service), uint32(len(service)),
		abi.StringPtr(method), uint32(len(method)), abi.BytesPtr(md), uint32(len(md)), &token)
	if err := statusToError(st); err != nil {
		return 0, err
	}
	current.roots[rootID].grpc[token] = grpcCall{cb: cb, caller: current.active}
	return token, nil
}

// SendGrpcStreamMessage sends one message on a stream; endStream half-closes it.
func SendGrpcStreamMessage(token uint32, message []byte, endStream bool) error {
	var eos uint32
	if endStream {
		eos = 1
	}
	return statusToError(abi.ProxyGrpcSend(token, abi.BytesPtr(message), uint32(len(message)), eos))
}

// CancelGrpcCall cancels a call or stream; OnClose does not run.
func CancelGrpcCall(token uint32) error {
	current.forgetGrpc(token)
	return statusToError(abi.ProxyGrpcCancel(token))
}

// CloseGrpcStream closes a stream from this side.
func CloseGrpcStream(token uint32) error { return statusToError(abi.ProxyGrpcClose(token)) }

func GetGrpcReceiveBuffer(start, maxSize int) ([]byte, error) {
	return getBuffer(abi.BufferGrpcReceive, start, maxSize)
}
func GetGrpcReceiveInitialMetadata() ([][2]string, error) {
	return getMap(abi.MapGrpcInitialMetadata)
}
func GetGrpcReceiveTrailingMetadata() ([][2]string, error) {
	return getMap(abi.MapGrpcTrailingMetadata)
}

// GetStatus returns the status of the last gRPC call event (in OnClose).
func GetStatus() (code uint32, message string, err error) {
	var raw *byte
	var size uint32
	st := abi.ProxyGetStatus(&code, unsafe.Pointer(&raw), &size)
	b := hostBytes(raw, size)
	if err := statusToError(st); err != nil {
		return 0, "", err
	}
	return code, string(b), nil
}

func serializeOptional(pairs [][2]string) []byte {
	if len(pairs) == 0 {
		return nil
	}
	return SerializeMap(pairs)
}

type grpcCall struct {
	cb     GrpcCallbacks
	caller uint32
}

func (s *vmState) forgetGrpc(token uint32) {
	for _, r := range s.roots {
		delete(r.grpc, token)
	}
}

// grpcEvent finds a call and acts as its caller, as onHTTPCallResponse does.
func (s *vmState) grpcEvent(rootID, token uint32, done bool) (GrpcCallbacks, bool) {
	root, ok := s.roots[rootID]
	if !ok {
		return GrpcCallbacks{}, false
	}
	c, ok := root.grpc[token]
	if !ok {
		return GrpcCallbacks{}, false
	}
	if done {
		delete(root.grpc, token)
	}
	s.actAs(rootID, c.caller)
	return c.cb, true
}

func (s *vmState) onGrpcInitialMetadata(rootID, token, n uint32) {
	if cb, ok := s.grpcEvent(rootID, token, false); ok && cb.OnInitialMetadata != nil {
		cb.OnInitialMetadata(int(n))
	}
}

func (s *vmState) onGrpcReceive(rootID, token, size uint32) {
	if cb, ok := s.grpcEvent(rootID, token, false); ok && cb.OnMessage != nil {
		cb.OnMessage(int(size))
	}
}

func (s *vmState) onGrpcTrailingMetadata(rootID, token, n uint32) {
	if cb, ok := s.grpcEvent(rootID, token, false); ok && cb.OnTrailingMetadata != nil {
		cb.OnTrailingMetadata(int(n))
	}
}

func (s *vmState) onGrpcClose(rootID, token, status uint32) {
	if cb, ok := s.grpcEvent(rootID, token, true); ok && cb.OnClose != nil {
		cb.OnClose(status)
	}
}
