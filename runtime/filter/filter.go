// Package filter is the contract between the proxy and the HTTP filters of a
// route: Envoy's decoder/encoder filter statuses as Go types, so a native
// filter and a Wasm filter look the same to the chain.
//
// The model is synchronous: the proxy's goroutine for a stream calls each
// filter in turn. A filter that returns StopIteration has paused the stream;
// the chain then waits (bounded by the route timeout) until the filter calls
// Stream.Resume or Stream.SendLocalReply from another goroutine, such as an
// http_call reply or a tick. Goroutines are cheap; Envoy's event-loop
// re-entry is not needed to get the same behaviour.
package filter

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Status is what a filter returns from a callback.
type Status int

const (
	// Continue passes the headers, chunk or trailers on to the next filter.
	Continue Status = iota
	// StopIteration pauses the stream until Stream.Resume is called. From a
	// body callback it also means "hold this chunk" (Envoy's
	// StopIterationNoBuffer when the chunk is consumed).
	StopIteration
	// StopIterationAndBuffer (body callbacks) holds the chunk and every later
	// one until end of stream, then calls the filter again with the whole
	// body and endOfStream set. Bounded by the listener's buffer limit:
	// 413 for requests, 500 for responses past it.
	StopIterationAndBuffer
)

// Direction names the request (decode) or the response (encode) half.
type Direction int

const (
	Request Direction = iota
	Response
)

// Body is one chunk of a body as it passes through the chain, or the whole
// buffered body. A filter may replace it (Set) and the chain forwards the
// new bytes; content-length is fixed up by the proxy.
type Body struct {
	Data []byte
}

// HTTPFilter is one filter instance for one stream. A filter that has no use
// for bodies or trailers returns Continue from those callbacks.
type HTTPFilter interface {
	OnRequestHeaders(s Stream, endOfStream bool) Status
	OnRequestBody(s Stream, b *Body, endOfStream bool) Status
	OnRequestTrailers(s Stream) Status
	OnResponseHeaders(s Stream, endOfStream bool) Status
	OnResponseBody(s Stream, b *Body, endOfStream bool) Status
	OnResponseTrailers(s Stream) Status
	// OnLog runs once the stream is complete (after the response or a reset),
	// before OnDone. Filters read final properties here.
	OnLog(s Stream)
	// OnDone releases the filter; it is called exactly once.
	OnDone(s Stream)
}

// ErrClosed is what NewFilter returns from a factory a reload has already
// closed: the stream should take the current snapshot's factory instead.
var ErrClosed = errors.New("plugin version closed by a reload")

// Factory makes a filter per stream. It is built once per plugin config
// generation; Name is the plugin name for logs and metrics.
type Factory interface {
	Name() string
	// NewFilter returns the filter for one stream. An error means the plugin
	// cannot serve this stream (e.g. every instance is broken); FailOpen says
	// whether the stream then goes on without it (true) or gets a 503.
	NewFilter(ctx context.Context, s Stream) (HTTPFilter, error)
	FailOpen() bool
}

// LocalReply is a response made by sluice or a filter instead of upstream.
type LocalReply struct {
	Status int
	Body   []byte
	// Header holds the reply's fields (no pseudo-headers); nil for none.
	Header  *stream.HeaderMap
	Details string
	// GRPCStatus, when >= 0 on a gRPC request, makes a trailers-only reply.
	GRPCStatus int
}

// Stream is what a filter sees of one HTTP exchange; the proxy implements it.
// Headers and trailers are stream.HeaderMaps: lower-case names, in the
// order received, pseudo-headers first. Request and response headers are
// mutable only while their callbacks run or while the stream is paused at
// that point.
type Stream interface {
	// Context is cancelled when the stream ends (client gone, timeout).
	Context() context.Context
	// RequestHeaders is the downstream request as it will be sent
	// upstream: :method, :path (request-target: path and query),
	// :authority and :scheme, then the fields.
	RequestHeaders() *stream.HeaderMap
	// RequestTrailers is nil until request trailers have arrived.
	RequestTrailers() *stream.HeaderMap
	// ResponseHeaders is nil until the response headers phase starts;
	// then :status and the fields (a local reply's too).
	ResponseHeaders() *stream.HeaderMap
	// ResponseTrailers is nil until the response headers phase starts;
	// then the trailers so far (empty until they arrive: fields a filter
	// adds are sent as trailers).
	ResponseTrailers() *stream.HeaderMap
	// Resume continues the stream after a filter returned StopIteration.
	Resume(d Direction)
	// SendLocalReply answers the stream locally; the chain stops.
	SendLocalReply(r LocalReply)
	// Info carries what properties are made of.
	Info() *Info
}

// ResponseStatus is the response's :status, 0 before the response
// headers phase.
func ResponseStatus(s Stream) int {
	h := s.ResponseHeaders()
	if h == nil {
		return 0
	}
	return StatusOf(h)
}

// StatusOf is h's :status as a number, 0 when it has none that is one.
func StatusOf(h *stream.HeaderMap) int {
	// By its handle: asked once a response (the access log's and the
	// filters' view of it), and Get's lookup was some 70 instructions.
	v, _ := h.GetPseudo(stream.PseudoStatus)
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// RequestIDOf is info's request id as a string ("" without one).
func RequestIDOf(info *Info) string {
	if info.RequestID == "" && len(info.RequestIDBytes) > 0 {
		return string(info.RequestIDBytes)
	}
	return info.RequestID
}

// Info is the stream's metadata: properties read it.
type Info struct {
	ID uint64
	// RequestID is the stream's x-request-id as made by whoever filled
	// Info; the proxy leaves it empty and fills RequestIDBytes instead, so
	// that a stream whose filters never read it makes no string.
	RequestID string
	// RequestIDBytes is the stream's x-request-id in the stream's own
	// storage: valid while the stream lasts, copy what is kept. Read both
	// through RequestIDOf.
	RequestIDBytes  []byte
	Start           time.Time
	Protocol        string // "HTTP/1.1", "HTTP/2", "HTTP/3"
	Scheme          string
	RouteName       string
	RouteMetadata   map[string]any
	ClusterName     string
	ClusterMetadata map[string]any
	// Upstream is the address of the endpoint picked, "" until picked.
	Upstream        string
	Source          string // downstream remote address "ip:port"
	Destination     string // local address "ip:port"
	ConnectionID    uint64
	TLS             *TLSInfo
	RequestSize     int64
	ResponseSize    int64
	ResponseDetails string
	// Properties set by filters (proxy_set_property), readable by later
	// filters; also the backend picker reads "canary.subset" style keys.
	FilterState map[string][]byte
	// Cluster, until the router picks the backend, resolves ClusterName
	// and ClusterMetadata from the route and what the filters did so far,
	// as Envoy resolves the route when a filter first asks and again after
	// a filter changes what it depends on (clearRouteCache). Properties
	// call it before answering cluster_name or cluster_metadata; nil once
	// the pick is made.
	Cluster ClusterResolver
}

// ClusterResolver fills a stream's cluster before the router has picked
// its backend; the router implements it.
type ClusterResolver interface {
	ResolveCluster(info *Info)
}

// TLSInfo describes the downstream TLS connection.
type TLSInfo struct {
	Version        string
	ServerName     string
	MTLS           bool
	PeerURISANs    []string
	PeerDNSSANs    []string
	PeerSubject    string
	LocalURISANs   []string
	LocalDNSSANs   []string
	LocalSubject   string
	PeerCertSHA256 string
	// PeerCertDER is the peer's certificate as received (nil without
	// one), for connection.peer_certificate.
	PeerCertDER []byte
}

// Callbacks is a set of HTTPFilter callbacks, one bit each.
type Callbacks uint32

const (
	RequestHeadersCallback Callbacks = 1 << iota
	RequestBodyCallback
	RequestTrailersCallback
	ResponseHeadersCallback
	ResponseBodyCallback
	ResponseTrailersCallback
	LogCallback
)

// BodyCallbacks is d's body and trailers callbacks: what a filter must
// skip for the proxy to leave d's body untouched.
func BodyCallbacks(d Direction) Callbacks {
	if d == Request {
		return RequestBodyCallback | RequestTrailersCallback
	}
	return ResponseBodyCallback | ResponseTrailersCallback
}

// Skipper is optional. A filter that implements it names the callbacks it
// has no use for: each would only answer Continue and change nothing (a
// Wasm filter knows them from its plugin's sluice_skip_callbacks). The
// proxy may then not call them at all, as Envoy calls no body callbacks
// of a filter that does not want them. When no filter on a chain wants a
// direction's body or trailers, that body goes through untouched, as on a
// route without filters: streamed as it comes, content-length kept. The
// answer must not change during the stream; it is read once, after
// NewFilter.
type Skipper interface {
	SkippedCallbacks() Callbacks
}

// Finisher is optional. A filter whose DoneIsFinal answers true promises
// that once its OnDone has returned it never calls its Stream again (no
// late Resume or SendLocalReply from an http_call reply or a tick): the
// proxy may then reuse the stream's memory for a later stream. A filter
// that does not implement it is taken to possibly call back.
type Finisher interface {
	DoneIsFinal() bool
}
