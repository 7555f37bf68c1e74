// Package hostabi is Sluice's proxy-wasm host on wazero. It runs filters
// built for Envoy with any proxy-wasm SDK: the ABI versions 0.1.0, 0.2.0 and
// 0.2.1, a pool of instances per plugin, host-side shared data, queues and
// metrics, a sandbox (memory limit, call deadline) and hot loading.
//
// It imports nothing from the proxy. The proxy implements the small
// interfaces declared here: StreamHost for one HTTP stream (headers, local
// replies, resume, properties) and HTTPCaller, SharedStore and Metrics for
// the process.
package hostabi

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// MapType selects a header map (proxy_map_type_t).
type MapType = abi.MapType

// Header maps a StreamHost serves.
const (
	RequestHeaders   = abi.MapHTTPRequestHeaders
	RequestTrailers  = abi.MapHTTPRequestTrailers
	ResponseHeaders  = abi.MapHTTPResponseHeaders
	ResponseTrailers = abi.MapHTTPResponseTrailers
)

// StreamType names a half of a stream (proxy_stream_type_t).
type StreamType = abi.StreamType

// Stream halves for StreamHost.Resume and StreamHost.Close.
const (
	StreamRequest  = abi.StreamHTTPRequest
	StreamResponse = abi.StreamHTTPResponse
)

// MetricType is a metric kind (proxy_metric_type_t).
type MetricType = abi.MetricType

// Metric kinds for Metrics.Define.
const (
	Counter   = abi.MetricCounter
	Gauge     = abi.MetricGauge
	Histogram = abi.MetricHistogram
)

// Errors the runtime's implementations return; hostabi maps them to ABI
// status codes.
var (
	// ErrNotFound: no such key, metric or queue (NotFound).
	ErrNotFound = errors.New("not found")
	// ErrCASMismatch: a shared data write lost a compare-and-swap race.
	ErrCASMismatch = errors.New("cas mismatch")
	// ErrUnknownCluster: an http_call named a cluster that does not exist
	// (BadArgument, as Envoy).
	ErrUnknownCluster = errors.New("unknown cluster")
	// ErrUnavailable: the plugin has no working instance for a new stream
	// (every one broke and replacement is backing off, or it is closed).
	ErrUnavailable = errors.New("no plugin instance available")
	// ErrClosed (with ErrUnavailable): the plugin generation was closed
	// after the caller picked it; a newer generation may serve the stream.
	ErrClosed = errors.New("plugin generation closed")
)

// HeaderMap is one header map of a stream, pseudo-headers (":method",
// ":path", ":authority", ":scheme", ":status") first, in the form the
// hostcalls move it: byte slices, so reading or editing a header costs no
// conversion and no allocation. Names are lowercase as Envoy passes them;
// an implementation matches them without regard to ASCII case.
//
// The slices hostabi passes in are views of the guest's memory, valid only
// for the call: an implementation copies what it keeps. hostabi reads the
// slices At and GetBytes return at once and never modifies them; they need
// stay valid only until the map next changes.
type HeaderMap interface {
	// Len is the number of fields.
	Len() int
	// At is field i, 0 <= i < Len(), in order.
	At(i int) (name, value []byte)
	// GetBytes is the first value of name, as Envoy's
	// proxy_get_header_map_value answers.
	GetBytes(name []byte) (value []byte, ok bool)
	// AddBytes appends a field.
	AddBytes(name, value []byte)
	// SetBytes replaces every value of name with one.
	SetBytes(name, value []byte)
	// DelBytes removes every field called name.
	DelBytes(name []byte)
	// Reset empties the map: proxy_set_header_map_pairs then adds the
	// new fields one by one.
	Reset()
}

// LocalResponse is what proxy_send_local_response asks for.
type LocalResponse struct {
	Status  int
	Details string
	Body    []byte
	Headers [][2]string
	// GRPCStatus is -1 unless the filter asked for a gRPC status.
	GRPCStatus int
}

// StreamHost is the proxy's side of one HTTP stream. hostabi calls it only
// while it holds the stream's instance, never concurrently with itself.
// Resume, Close and SendLocalResponse are called after the Wasm callback
// that asked for them has returned and the instance is released, so an
// implementation may re-enter the filter chain synchronously.
type StreamHost interface {
	// Headers returns a header map, or nil when it does not exist (yet),
	// e.g. response headers during the request phase.
	Headers(t MapType) HeaderMap
	// SendLocalResponse answers the stream from the filter.
	SendLocalResponse(r LocalResponse)
	// Resume continues a half paused by this filter (continue_stream from
	// another callback: an http_call reply, a tick, a queue).
	Resume(t StreamType)
	// Close resets a half of the stream (proxy_close_stream).
	Close(t StreamType)
	// Property returns an Envoy attribute by path segments, e.g.
	// ["request", "path"], encoded as Envoy encodes it (strings raw,
	// integers 8-byte little endian, maps as serialized pairs). The
	// segments are views of guest memory and the path slice is reused:
	// both are valid for the call only. The host copies the answer
	// into the guest before anything else runs, so it may be a view of
	// the implementation's own data.
	Property(path []string) ([]byte, bool)
	// SetProperty stores a filter property (proxy_set_property). The
	// path's segments and value are the host's own copies, which the
	// implementation may keep (the path slice itself is reused).
	SetProperty(path []string, value []byte) error
}

// HTTPCallRequest is an http_call dispatched by a plugin.
type HTTPCallRequest struct {
	Cluster  string
	Headers  [][2]string
	Body     []byte
	Trailers [][2]string
	Timeout  time.Duration
}

// HTTPCallResponse is the reply to an http_call.
type HTTPCallResponse struct {
	Headers  [][2]string
	Body     []byte
	Trailers [][2]string
}

// HTTPCaller dispatches http_calls to the proxy's clusters.
type HTTPCaller interface {
	// HTTPCall starts the call and returns at once. It returns
	// ErrUnknownCluster (wrapped or not) for a cluster it does not know.
	// Otherwise done is called exactly once, from any goroutine, with the
	// reply or an error (timeout, connect failure). ctx ends with the plugin.
	HTTPCall(ctx context.Context, req HTTPCallRequest, done func(HTTPCallResponse, error)) error
}

// SharedStore holds proxy_{get,set}_shared_data, shared by all instances
// (and, with a remote store, by replicas). Keys live in the space of the
// calling plugin's vm_id, as in Envoy: plugins with different vm_ids
// neither see nor change each other's data (plugins without one share
// the space of the empty vm_id), so a user's filter cannot rewrite the
// built-ins' rate-limit counters or fetched keys.
type SharedStore interface {
	// Get returns ErrNotFound for a missing key.
	Get(ctx context.Context, vmID, key string) (value []byte, cas uint32, err error)
	// Set writes when cas is 0 or equals the current cas, else returns
	// ErrCASMismatch.
	Set(ctx context.Context, vmID, key string, value []byte, cas uint32) error
}

// Metrics holds plugin-defined metrics. Define is idempotent per (kind,
// name); names may carry "_key=value" tag segments the exporter turns into
// labels.
type Metrics interface {
	Define(kind MetricType, name string) (id uint32, err error)
	// Increment adds delta to a counter or gauge.
	Increment(id uint32, delta int64) error
	// Record sets a gauge or observes a histogram value.
	Record(id uint32, value uint64) error
	// Get reads a counter or gauge.
	Get(id uint32) (uint64, error)
}

// PropertyFunc answers properties that belong to the process rather than a
// stream (node.*, xds.node, ...). Optional. As for StreamHost.Property,
// the path slice is reused after the call.
type PropertyFunc func(path []string) ([]byte, bool)

// GRPCStreamRequest opens a bidirectional gRPC stream (proxy_grpc_stream).
type GRPCStreamRequest struct {
	// Cluster is the upstream the filter named; an implementation returns
	// ErrUnknownCluster for one it does not know.
	Cluster string
	Service string
	Method  string
	// Metadata is the filter's initial metadata, sent as request headers
	// after the gRPC ones (:method POST, :path /Service/Method,
	// content-type application/grpc, te trailers).
	Metadata [][2]string
}

// GRPCStreamEvents is what the upstream sends on a stream, delivered in
// Envoy's order: InitialMetadata at most once, Message any number of times,
// TrailingMetadata at most once, then Close exactly once. The
// implementation calls them one at a time, from one goroutine, never from
// inside GRPCStreamer.GRPCStream or a GRPCStream method; each returns once
// the filter has run its callback (that is the stream's back-pressure).
type GRPCStreamEvents interface {
	// InitialMetadata passes the response headers (":status" included).
	InitialMetadata(md [][2]string)
	// Message passes one message without its 5-byte gRPC prefix.
	Message(msg []byte)
	// TrailingMetadata passes the trailers (grpc-status included), or the
	// headers of a trailers-only response.
	TrailingMetadata(md [][2]string)
	// Close ends the stream with a gRPC status code: the server's
	// grpc-status, or one the implementation chose for a failure (14
	// Unavailable when the upstream could not be reached or answered a
	// non-200 HTTP status, 13 Internal for a reset or a malformed message).
	Close(status int, message string)
}

// GRPCStream is an open stream. Its methods never block on the network:
// the filter's instance is held while they run.
type GRPCStream interface {
	// Send queues one message (the implementation adds the 5-byte
	// prefix); endOfStream half-closes the local side after it.
	Send(msg []byte, endOfStream bool) error
	// CloseSend half-closes the local side (proxy_grpc_close); the
	// upstream may go on sending. Safe to repeat.
	CloseSend()
	// Reset aborts the stream (proxy_grpc_cancel). Events may still be in
	// flight; hostabi drops them.
	Reset()
}

// GRPCStreamer opens gRPC streams to the proxy's clusters
// (proxy_grpc_stream). EngineConfig.GRPC sets it; when that is nil and
// EngineConfig.HTTP implements GRPCStreamer, HTTP serves streams too.
type GRPCStreamer interface {
	// GRPCStream opens the stream and returns at once, or returns
	// ErrUnknownCluster (wrapped or not) for a cluster it does not know.
	// ctx ends with the plugin, which resets the stream.
	GRPCStream(ctx context.Context, req GRPCStreamRequest, ev GRPCStreamEvents) (GRPCStream, error)
}

// Resolver looks host names up for the "resolve_lua" foreign function.
// EngineConfig.Resolver sets it; the default is net.DefaultResolver.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}
