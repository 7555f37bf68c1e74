package hostabi

import (
	"context"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// PeerType says who closed a connection (proxy_peer_type_t).
type PeerType = abi.PeerType

// Peers for NetworkStream close callbacks.
const (
	PeerUnknown = abi.PeerUnknown
	PeerLocal   = abi.PeerLocal
	PeerRemote  = abi.PeerRemote
)

// Connection halves for NetworkHost.Resume and NetworkHost.Close.
const (
	StreamDownstream = abi.StreamDownstream
	StreamUpstream   = abi.StreamUpstream
)

// NetworkHost is the proxy's side of one TCP connection through a network
// filter. As with StreamHost, Resume and Close come after the callback that
// asked for them has released the instance.
type NetworkHost interface {
	// Resume continues a half paused by this filter.
	Resume(t StreamType)
	// Close closes a half of the connection.
	Close(t StreamType)
	Property(path []string) ([]byte, bool)
	SetProperty(path []string, value []byte) error
}

// netHost shows a NetworkHost as a StreamHost with no header maps.
type netHost struct{ NetworkHost }

func (netHost) Headers(MapType) HeaderMap       { return nil }
func (netHost) SendLocalResponse(LocalResponse) {}

// NetworkStream is one connection's context in an instance of a plugin
// (Envoy's network filter callbacks).
type NetworkStream struct{ s *HTTPStream }

// NewNetworkStream creates a connection context on an instance.
func (p *Plugin) NewNetworkStream(ctx context.Context, host NetworkHost) (*NetworkStream, error) {
	s := new(HTTPStream)
	if err := p.newStream(ctx, s, netHost{host}, true); err != nil {
		return nil, err
	}
	return &NetworkStream{s: s}, nil
}

// OnNewConnection runs proxy_on_new_connection.
func (n *NetworkStream) OnNewConnection() (Action, error) {
	r, e, err := n.s.enter(cbNewConnection, StreamDownstream, noCount, uint64(n.s.id))
	return action(r, e, err, false)
}

// OnDownstreamData runs proxy_on_downstream_data on bytes from the client
// and returns them as the filter left them.
func (n *NetworkStream) OnDownstreamData(data []byte, endOfStream bool) ([]byte, Action, error) {
	out, a, err := n.s.bodyCallback(cbDownstreamData, int(abi.BufferDownstreamData), data, endOfStream, StreamDownstream)
	if a == Buffer {
		a = Pause
	}
	return out, a, err
}

// OnUpstreamData runs proxy_on_upstream_data on bytes from the backend.
func (n *NetworkStream) OnUpstreamData(data []byte, endOfStream bool) ([]byte, Action, error) {
	out, a, err := n.s.bodyCallback(cbUpstreamData, int(abi.BufferUpstreamData), data, endOfStream, StreamUpstream)
	if a == Buffer {
		a = Pause
	}
	return out, a, err
}

// OnDownstreamClose runs proxy_on_downstream_connection_close.
func (n *NetworkStream) OnDownstreamClose(peer PeerType) error {
	_, err := n.s.invoke(cbDownstreamClose, uint64(n.s.id), uint64(peer))
	return err
}

// OnUpstreamClose runs proxy_on_upstream_connection_close.
func (n *NetworkStream) OnUpstreamClose(peer PeerType) error {
	_, err := n.s.invoke(cbUpstreamClose, uint64(n.s.id), uint64(peer))
	return err
}

// OnDone ends the connection's context (proxy_on_done, proxy_on_delete);
// call it exactly once.
func (n *NetworkStream) OnDone() error { return n.s.OnDone() }
