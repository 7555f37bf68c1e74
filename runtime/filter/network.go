package filter

import "context"

// NetworkFilter is one network (L4) filter instance for one TCP connection:
// Envoy's network read and write filter in one. Halves are named by
// Direction: Request is the client's bytes on their way to the backend
// (downstream data), Response the backend's on their way back (upstream
// data). The proxy calls one filter at a time per connection.
type NetworkFilter interface {
	// OnNewConnection runs once the connection is accepted, before the
	// backend is dialed. StopIteration holds the dial until
	// NetworkConnection.Continue (bounded by the listener).
	OnNewConnection() (Status, error)
	// OnData gets the half's pending bytes (what earlier filters passed on
	// plus what this filter held) and returns the bytes to pass on.
	// StopIteration holds the returned bytes until Continue; they come back
	// to this filter with the next data.
	OnData(d Direction, data []byte, endOfStream bool) ([]byte, Status, error)
	// OnClose says that half d's connection closed; local when the proxy
	// or a filter closed it, false when the peer did.
	OnClose(d Direction, local bool) error
	// OnDone releases the filter; it is called exactly once.
	OnDone()
}

// NetworkFactory makes a network filter per connection. An error from
// NewNetworkFilter means the plugin cannot serve this connection; FailOpen
// says whether the connection then goes on without it.
type NetworkFactory interface {
	Name() string
	FailOpen() bool
	NewNetworkFilter(ctx context.Context, c NetworkConnection) (NetworkFilter, error)
}

// NetworkConnection is what a network filter sees of its TCP connection;
// the proxy implements it. Continue and Close may be called from any
// goroutine, after the callback that decided them has returned.
type NetworkConnection interface {
	// Continue resumes half d after the filter returned StopIteration
	// (from OnNewConnection: lets the dial go on).
	Continue(d Direction)
	// Close ends the whole connection, as a tcp_proxy does when either
	// side goes.
	Close()
	// Attributes are the connection-level attributes as they are now
	// (Upstream is set once the backend is dialed).
	Attributes() Connection
	// FilterState holds what filters set on this connection (dotted key),
	// readable by the later filters.
	FilterState(key string) ([]byte, bool)
	SetFilterState(key string, value []byte)
}
