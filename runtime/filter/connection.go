package filter

import (
	"context"
	"crypto/tls"
	"sync/atomic"
)

// Connection is what Envoy's connection-level attributes are made of. An
// HTTP stream and a TCP (network filter) connection both describe theirs
// with it, so both answer source.*, destination.*, upstream.address,
// connection.*, cluster_name and cluster_metadata from one table
// (wasmfilter.ConnectionProperty answers them for
// Wasm filters); request.* and response.* stay the HTTP side's.
type Connection struct {
	// ID is Envoy's connection.id: unique among the process's downstream
	// connections (NextConnectionID).
	ID          uint64
	Source      string // downstream remote address "ip:port"
	Destination string // downstream local address "ip:port"
	// Upstream is the endpoint's address, "" until one is picked.
	Upstream        string
	TLS             *TLSInfo // nil without TLS
	ListenerName    string
	ClusterName     string
	ClusterMetadata map[string]any
}

var connectionIDs atomic.Uint64

// NextConnectionID numbers a new downstream connection.
func NextConnectionID() uint64 { return connectionIDs.Add(1) }

type connectionIDKey struct{}

// WithConnectionID gives a new downstream connection's context its id
// (NextConnectionID); HTTP listeners call it once per connection (their
// ConnContext), so the id costs nothing per request.
func WithConnectionID(ctx context.Context) context.Context {
	return context.WithValue(ctx, connectionIDKey{}, NextConnectionID())
}

// ConnectionID is the id WithConnectionID gave the connection ctx
// descends from; 0 without one.
func ConnectionID(ctx context.Context) uint64 {
	id, _ := ctx.Value(connectionIDKey{}).(uint64)
	return id
}

// TLSVersionName spells a TLS version as Envoy's connection.tls_version
// and upstream.tls_version do: BoringSSL's SSL_get_version names
// ("TLSv1.2", "TLSv1.3"), not Go's ("TLS 1.3").
func TLSVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return "unknown"
}
