package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
)

// ServerStream is one downstream request as a server codec delivers it, and
// the way its response goes back: the contract between a codec
// (runtime/http1, the HTTP/2 codec, the adapters in front of x/net and
// quic-go) and the connection manager, as Envoy's StreamDecoder and
// ResponseEncoder are.
//
// A stream is served by one goroutine at a time (the one ServeStream runs
// on), with three exceptions safe from any goroutine: Context, ReadBody
// (a body pump may read beside the stream) and Reset (a stream timeout
// fires on its own timer). Everything a codec hands out (header maps, the
// body bytes it lends) is valid until ServeStream returns, and the stream
// itself must not be touched after that, by any goroutine or timer: an
// HTTP/1.1 codec reuses the object for the connection's next request, so a
// late call would act on another request.
type ServerStream interface {
	// RequestHeaders are the request's pseudo-headers (:method, :path,
	// :authority, :scheme) and fields. A protocol that carries no scheme
	// (HTTP/1.1) has the connection's: a codec adds it with the other
	// pseudo-headers, before the fields (the HTTP/1.1 codec does), or
	// leaves it out and the connection manager appends
	// ConnectionInfo.Scheme, which moves every field once.
	// The handler owns the map for the stream's life and may change it in
	// place.
	RequestHeaders() *HeaderMap
	// RequestBodyLength is the body's declared length: 0 when the headers
	// ended the stream, -1 when the length is unknown (chunked, or HTTP/2
	// without content-length).
	RequestBodyLength() int64
	// ReadBody reads request body bytes, io.EOF at its end. On HTTP/1.1
	// the first call sends a pending 100-continue.
	ReadBody(p []byte) (int, error)
	// RequestTrailers are the request's trailers once ReadBody has
	// returned io.EOF; nil when there were none.
	RequestTrailers() *HeaderMap

	// WriteHeaders sends the response head: :status and the fields.
	// endStream says no body follows. The codec owns framing: it keeps a
	// content-length the map carries, and otherwise chooses (chunked,
	// close-delimited, DATA frames).
	WriteHeaders(h *HeaderMap, endStream bool) error
	// WriteBody sends body bytes; endStream ends the response without
	// trailers. The codec may hold bytes until Flush or the end.
	WriteBody(p []byte, endStream bool) error
	// WriteTrailers ends the response with trailers.
	WriteTrailers(t *HeaderMap) error
	// Flush sends what the codec holds (a streaming response).
	Flush() error
	// Reset abandons the stream after what was written: HTTP/1.1 closes
	// the connection, HTTP/2 sends RST_STREAM.
	Reset(reason ResetReason)

	// Context ends when the client goes away, the connection closes or
	// the stream is reset.
	Context() context.Context
	// Connection describes the downstream connection; the same pointer for
	// every stream of a connection.
	Connection() *ConnectionInfo
	// Upgrade takes over the connection once a 101 response has been
	// written (HTTP/1.1 only; ErrUpgradeUnsupported elsewhere): the
	// connection and the bytes the codec had read past the request head.
	// The codec forgets the connection.
	Upgrade() (net.Conn, []byte, error)
}

// Implementation notes, as the codecs meet the contract above:
//
//   - runtime/http1 reuses one stream object per connection for each of its
//     requests (so a keep-alive request allocates nothing): when
//     ServeStream returns, the handler's goroutines and timers must be done
//     with the stream, or they act on the connection's next request.
//   - ReadBody may run on another goroutine than ServeStream (a body pumped
//     upstream while the response is awaited), and so may Reset (a stream
//     timeout): HTTP/1.1 guards both, and its Reset ends a write blocked on
//     a client that stopped reading.
//   - HTTP/1.1's Context is the connection's: every event that ends it (the
//     client gone, a body framing error, Reset) also closes the connection.
//   - HTTP/2 keeps a stream's Context for the connection's next stream when
//     it ended quiet (not ended, its registrations stopped, its Done channel
//     never taken), as HTTP/1.1 keeps its one: in both, a Context kept past
//     ServeStream may report a later stream's end, so nothing may hold it
//     beyond the stream.
//   - HTTP/1.1 frames by what the map and the calls say: a content-length
//     kept, a body written with its end measured, otherwise chunked
//     (close-delimited to HTTP/1.0). Trailers after a content-length or to
//     an HTTP/1.0 client are dropped, as Envoy does.

// Handler serves the streams of a listener: the connection manager.
// ServeStream returns when the response is complete or the stream reset.
type Handler interface {
	ServeStream(s ServerStream)
}

// ResetReason says why a stream is abandoned; HTTP/2 maps it to an error
// code.
type ResetReason uint8

const (
	// ResetInternal: the proxy failed the stream (INTERNAL_ERROR).
	ResetInternal ResetReason = iota
	// ResetCancel: the stream is no longer wanted (CANCEL), e.g. an
	// upstream that went away mid-body. After a complete response only
	// the rest of the request is, and HTTP/2 says so with NO_ERROR.
	ResetCancel
	// ResetProtocol: the peer broke the protocol (PROTOCOL_ERROR).
	ResetProtocol
	// ResetRefused: the stream was not processed (REFUSED_STREAM).
	ResetRefused
)

// ConnectionInfo describes one downstream connection.
type ConnectionInfo struct {
	// ID is unique per process, as Envoy's connection id.
	ID uint64
	// Protocol is "HTTP/1.1", "HTTP/1.0", "HTTP/2" or "HTTP/3". An
	// HTTP/1.x codec sets it per request (one stream at a time).
	Protocol string
	// Scheme is "http" or "https".
	Scheme        string
	Remote, Local net.Addr
	// RemoteAddress and LocalAddress are Remote and Local as text
	// (AddrString), formatted once for the connection by the codec
	// (FormatAddresses) rather than by every stream; empty when the codec
	// did not.
	RemoteAddress, LocalAddress string
	// TLS is nil on a plain-text connection.
	TLS *tls.ConnectionState

	// HandlerState is the stream handler's own state for the
	// connection, which codecs never touch: what it reuses from one
	// stream to the next. An HTTP/1.x connection serves its streams one
	// at a time, so a handler may keep state here on HTTP/1.x; the
	// streams of a multiplexed protocol run at once, so there it leaves
	// the field alone.
	HandlerState any
}

// FormatAddresses fills RemoteAddress and LocalAddress from Remote and
// Local: a codec calls it once it has set them.
func (c *ConnectionInfo) FormatAddresses() {
	if c.Remote != nil {
		c.RemoteAddress = AddrString(c.Remote)
	}
	if c.Local != nil {
		c.LocalAddress = AddrString(c.Local)
	}
}

// AddrString is a.String() with one allocation instead of two or three
// for a TCP address (netip formats into one buffer). An IPv4 address
// held in IPv6 form prints as IPv4, as net.IP.String prints it.
func AddrString(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return a.String()
}

// ErrUpgradeUnsupported is what Upgrade returns on protocols that cannot
// hand over their connection.
var ErrUpgradeUnsupported = errors.New("stream: connection upgrade not supported on this protocol")
