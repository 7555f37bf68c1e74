package wasmfilter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/filter"
)

// NewNetworkFilter implements filter.NetworkFactory: the plugin's context
// on one TCP connection (proxy_on_new_connection, the data and close
// callbacks). The failure policy stays with the caller, which knows the
// connection: an error here or from a callback is FailOpen's to decide.
func (f *WasmFactory) NewNetworkFilter(ctx context.Context, c filter.NetworkConnection) (filter.NetworkFilter, error) {
	s, err := f.p.NewNetworkStream(ctx, networkHost{c: c})
	if errors.Is(err, hostabi.ErrClosed) {
		return nil, fmt.Errorf("%w: %w", filter.ErrClosed, err)
	}
	if err != nil {
		return nil, err
	}
	return &networkFilter{s: s}, nil
}

// networkFilter speaks filter.NetworkFilter over hostabi's network stream.
type networkFilter struct{ s *hostabi.NetworkStream }

func networkStatus(a hostabi.Action) filter.Status {
	if a == hostabi.Pause {
		return filter.StopIteration
	}
	return filter.Continue
}

func (n *networkFilter) OnNewConnection() (filter.Status, error) {
	a, err := n.s.OnNewConnection()
	return networkStatus(a), err
}

func (n *networkFilter) OnData(d filter.Direction, data []byte, endOfStream bool) ([]byte, filter.Status, error) {
	var out []byte
	var a hostabi.Action
	var err error
	if d == filter.Request {
		out, a, err = n.s.OnDownstreamData(data, endOfStream)
	} else {
		out, a, err = n.s.OnUpstreamData(data, endOfStream)
	}
	return out, networkStatus(a), err
}

func (n *networkFilter) OnClose(d filter.Direction, local bool) error {
	peer := hostabi.PeerRemote
	if local {
		peer = hostabi.PeerLocal
	}
	if d == filter.Request {
		return n.s.OnDownstreamClose(peer)
	}
	return n.s.OnUpstreamClose(peer)
}

func (n *networkFilter) OnDone() { n.s.OnDone() }

// networkHost is hostabi's view of the connection: the halves as stream
// types, properties as Envoy's attributes.
type networkHost struct{ c filter.NetworkConnection }

func direction(t hostabi.StreamType) filter.Direction {
	if t == hostabi.StreamUpstream {
		return filter.Response
	}
	return filter.Request
}

func (h networkHost) Resume(t hostabi.StreamType) { h.c.Continue(direction(t)) }

// Close ends the connection whichever half the filter named: a
// tcp_proxy goes when either side does.
func (h networkHost) Close(hostabi.StreamType) { h.c.Close() }

// Property serves what a filter set on the connection, then
// source.principal (the peer's SPIFFE ID), then the connection-level
// attributes HTTP streams answer too.
func (h networkHost) Property(path []string) ([]byte, bool) {
	key := strings.Join(path, ".")
	if v, ok := h.c.FilterState(key); ok {
		return v, true
	}
	attrs := h.c.Attributes()
	if key == "source.principal" {
		id := spiffePeer(attrs.TLS)
		return []byte(id), id != ""
	}
	return ConnectionProperty(&attrs, key, path)
}

func (h networkHost) SetProperty(path []string, value []byte) error {
	h.c.SetFilterState(ownedKey(path), value)
	return nil
}

// spiffePeer is the peer certificate's SPIFFE ID, "" without one.
func spiffePeer(t *filter.TLSInfo) string {
	if t == nil {
		return ""
	}
	for _, u := range t.PeerURISANs {
		if strings.HasPrefix(u, "spiffe://") {
			return u
		}
	}
	return ""
}
