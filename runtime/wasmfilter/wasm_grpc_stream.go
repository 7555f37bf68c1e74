package wasmfilter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// GRPCStream implements hostabi.GRPCStreamer (proxy_grpc_stream) over the
// same cluster lookup as http_call: a stream is one HTTP/2 request to the
// cluster whose body carries the filter's messages as it sends them, and
// whose response is read as it arrives. The upstream's answer is replayed
// as Envoy's gRPC async client reports it (source/common/grpc/
// async_client_impl.cc): initial metadata (empty for a trailers-only
// response), the messages, trailing metadata, then the close with
// grpc-status; a non-200 reply closes with the status mapped as gRPC's
// http-grpc-status-mapping.md says, a failure to reach the upstream as
// Envoy's router local reply (see unreachable), a reset or a malformed frame mid-stream with 13 Internal.
// The cluster must speak HTTP/2 (protocol h2 or h2c). The stream has no
// deadline; it ends with the plugin (ctx) or proxy_grpc_cancel.
func (c *WasmHTTPCaller) GRPCStream(ctx context.Context, r hostabi.GRPCStreamRequest, ev hostabi.GRPCStreamEvents) (hostabi.GRPCStream, error) {
	call, ok := c.Lookup(r.Cluster)
	if !ok {
		return nil, fmt.Errorf("cluster %q: %w", r.Cluster, hostabi.ErrUnknownCluster)
	}
	limit := c.MaxResponseBytes
	if limit <= 0 {
		limit = 16 << 20
	}
	h := new(stream.HeaderMap)
	h.Add(stream.Method, http.MethodPost)
	h.Add(stream.Path, "/"+r.Service+"/"+r.Method)
	h.Add(stream.Authority, r.Cluster)
	for _, kv := range r.Metadata {
		if !strings.HasPrefix(kv[0], ":") {
			h.Add(kv[0], kv[1])
		}
	}
	h.Set("content-type", "application/grpc")
	h.Set("te", "trailers")
	sctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	req := &CallRequest{Headers: h, BodyStream: pr, ProtoMajor: 2}
	s := &wasmGRPCStream{cancel: cancel, pw: pw, limit: limit, writerDone: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.write()
	go s.read(sctx, call, req, ev)
	return s, nil
}

// wasmGRPCStream queues the filter's messages, so Send never blocks the
// filter's instance on HTTP/2 flow control; queued bytes are bounded by
// MaxResponseBytes.
type wasmGRPCStream struct {
	cancel context.CancelFunc
	pw     *io.PipeWriter
	limit  int64

	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	queued int64
	eos    bool // half-close once the queue is written
	reset  bool
	// over: the response ended; the writer stops and sends are dropped.
	over bool
	// writerDone is closed when the writer goroutine has returned.
	writerDone chan struct{}
}

var errStreamReset = errors.New("grpc stream reset by the filter")

func (s *wasmGRPCStream) Send(msg []byte, endOfStream bool) error {
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.reset:
		return errStreamReset
	case s.over:
		// The upstream has closed the call: nothing would read it.
		return nil
	case s.eos:
		return errors.New("grpc stream already half-closed")
	case s.queued+int64(len(frame)) > s.limit:
		return fmt.Errorf("grpc stream: over %d bytes queued for the upstream", s.limit)
	}
	s.queue = append(s.queue, frame)
	s.queued += int64(len(frame))
	s.eos = endOfStream
	s.cond.Signal()
	return nil
}

func (s *wasmGRPCStream) CloseSend() {
	s.mu.Lock()
	s.eos = true
	s.cond.Signal()
	s.mu.Unlock()
}

func (s *wasmGRPCStream) Reset() { s.stop(&s.reset, errStreamReset) }

// stop ends the writer and the request; why (reset or over) is set under
// the lock the writer waits on.
func (s *wasmGRPCStream) stop(why *bool, err error) {
	s.mu.Lock()
	*why = true
	s.queue = nil
	s.cond.Signal()
	s.mu.Unlock()
	s.cancel()
	s.pw.CloseWithError(err)
}

// write feeds the request body from the queue; the end of the queue after
// a half-close ends the body (END_STREAM).
func (s *wasmGRPCStream) write() {
	defer close(s.writerDone)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.eos && !s.reset && !s.over {
			s.cond.Wait()
		}
		if s.reset || s.over {
			s.mu.Unlock()
			return
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			s.pw.Close()
			return
		}
		f := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		_, err := s.pw.Write(f)
		s.mu.Lock()
		s.queued -= int64(len(f))
		s.mu.Unlock()
		if err != nil {
			// The transport is done with the body (reply over, reset).
			return
		}
	}
}

// finish stops the writer once the response is over, even if the filter
// never half-closes, and releases the request.
func (s *wasmGRPCStream) finish() { s.stop(&s.over, io.ErrClosedPipe) }

func (s *wasmGRPCStream) wasReset() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reset
}

// read runs the request and turns the response into events.
func (s *wasmGRPCStream) read(ctx context.Context, call ClusterCall, req *CallRequest, ev hostabi.GRPCStreamEvents) {
	defer s.finish()
	resp, err := call(ctx, req)
	if err != nil {
		if !s.wasReset() {
			s.unreachable(err, ev)
		}
		return
	}
	defer resp.Close()
	status, h := resp.Status(), resp.Headers()
	headers := appendHeaderPairs([][2]string{{":status", strconv.Itoa(status)}}, h)
	if st, _ := h.Get("grpc-status"); len(st) > 0 {
		// Trailers-only: the headers are the trailers.
		msg, _ := h.Get("grpc-message")
		ev.InitialMetadata(nil)
		ev.TrailingMetadata(headers)
		ev.Close(grpcStatusOf(string(st)), string(msg))
		return
	}
	ev.InitialMetadata(headers)
	if status != http.StatusOK {
		ev.Close(httpToGRPCStatus(status), "non-200 HTTP response")
		return
	}
	body := resp.Body()
	var prefix [5]byte
	for {
		_, err := io.ReadFull(body, prefix[:])
		if err == io.EOF {
			break
		}
		if err == nil {
			n := binary.BigEndian.Uint32(prefix[1:])
			if int64(n) > s.limit {
				ev.Close(grpcInternal, fmt.Sprintf("grpc message of %d bytes over the %d byte limit", n, s.limit))
				return
			}
			msg := make([]byte, n)
			if _, err = io.ReadFull(body, msg); err == nil {
				ev.Message(msg)
				continue
			}
		}
		if !s.wasReset() {
			ev.Close(grpcInternal, err.Error())
		}
		return
	}
	t := resp.Trailers()
	ev.TrailingMetadata(appendHeaderPairs(nil, t))
	var st, msg []byte
	if t != nil {
		st, _ = t.Get("grpc-status")
		msg, _ = t.Get("grpc-message")
	}
	if len(st) == 0 {
		ev.Close(grpcUnknown, "no grpc-status in the trailers")
		return
	}
	ev.Close(grpcStatusOf(string(st)), string(msg))
}

// unreachable reports a stream whose upstream could not be reached as
// Envoy's gRPC client sees it: its router answers a gRPC request with a
// trailers-only local reply (Http::Utility::sendLocalReply with
// is_grpc_request: :status 200, content-type application/grpc, grpc-status
// mapped from the 503, grpc-message the reply's text), which
// Grpc::AsyncStreamImpl::onHeaders turns into empty initial metadata, that
// reply as trailing metadata, then the close with grpc-status 14.
func (s *wasmGRPCStream) unreachable(err error, ev hostabi.GRPCStreamEvents) {
	msg := upstreamFailureMessage(err)
	ev.InitialMetadata(nil)
	ev.TrailingMetadata([][2]string{
		{":status", "200"},
		{"content-type", "application/grpc"},
		{"grpc-status", strconv.Itoa(grpcUnavailable)},
		{"grpc-message", msg},
	})
	ev.Close(grpcUnavailable, msg)
}

// RouterReplier is an error from a ClusterCall that knows the text
// Envoy's router answers for it (Router::Filter::onUpstreamReset's
// "upstream connect error or disconnect/reset before headers. reset
// reason: ..." or "no healthy upstream"). The cluster side words it, since
// it knows the failure's class and this binding does not know the
// upstream package.
type RouterReplier interface {
	RouterReply() string
}

// upstreamFailureMessage is the router's local reply text for a request
// that never reached an upstream.
func upstreamFailureMessage(err error) string {
	var r RouterReplier
	if errors.As(err, &r) {
		return r.RouterReply()
	}
	return "upstream connect error or disconnect/reset before headers. reset reason: " + err.Error()
}

const (
	grpcUnknown         = 2
	grpcPermission      = 7
	grpcUnimplemented   = 12
	grpcInternal        = 13
	grpcUnavailable     = 14
	grpcUnauthenticated = 16
)

func grpcStatusOf(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return grpcUnknown
	}
	return n
}

// httpToGRPCStatus maps a non-200 reply without grpc-status as gRPC's
// doc/http-grpc-status-mapping.md (and Envoy's Grpc::Utility).
func httpToGRPCStatus(code int) int {
	switch code {
	case 400:
		return grpcInternal
	case 401:
		return grpcUnauthenticated
	case 403:
		return grpcPermission
	case 404:
		return grpcUnimplemented
	case 429, 502, 503, 504:
		return grpcUnavailable
	}
	return grpcUnknown
}

var _ hostabi.GRPCStreamer = (*WasmHTTPCaller)(nil)
