package filtertest

import (
	"context"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/hostabi"
)

// Connection is one simulated TCP connection through a network filter.
type Connection struct {
	// ClientAddr is the source.address property; default 127.0.0.1:40000.
	ClientAddr string
	// Properties the filter may read, keyed by path joined with ".".
	Properties map[string][]byte
	// Downstream and Upstream are the bytes each side sends, in one chunk
	// each (the downstream one first).
	Downstream, Upstream []byte
}

// ConnResult is what the network filter did.
type ConnResult struct {
	// NewConnection is the filter's answer to proxy_on_new_connection.
	NewConnection hostabi.Action
	// Downstream and Upstream are the bytes as forwarded.
	Downstream, Upstream []byte
	// ClosedDownstream and ClosedUpstream say the filter closed a side.
	ClosedDownstream, ClosedUpstream bool
}

// Dial runs one connection through the filter: new connection, then
// (unless the filter paused or closed it) the data of each side, then both
// closes.
func (f *Filter) Dial(c Connection) *ConnResult {
	f.t.Helper()
	ctx := context.Background()
	h := &netStream{stream: newStream(Request{ClientAddr: c.ClientAddr, Properties: c.Properties})}
	n, err := f.Plugin.NewNetworkStream(ctx, h)
	if err != nil {
		f.t.Fatalf("new connection: %v", err)
	}
	defer n.OnDone()
	res := &ConnResult{}
	if res.NewConnection, err = n.OnNewConnection(); err != nil {
		f.t.Fatalf("new connection: %v", err)
	}
	if res.NewConnection == hostabi.Continue && !h.closedDown.Load() {
		if c.Downstream != nil {
			if res.Downstream, _, err = n.OnDownstreamData(c.Downstream, false); err != nil {
				f.t.Fatalf("downstream data: %v", err)
			}
		}
		if c.Upstream != nil {
			if res.Upstream, _, err = n.OnUpstreamData(c.Upstream, false); err != nil {
				f.t.Fatalf("upstream data: %v", err)
			}
		}
	}
	if err := n.OnDownstreamClose(hostabi.PeerRemote); err != nil {
		f.t.Fatalf("downstream close: %v", err)
	}
	if err := n.OnUpstreamClose(hostabi.PeerRemote); err != nil {
		f.t.Fatalf("upstream close: %v", err)
	}
	res.ClosedDownstream, res.ClosedUpstream = h.closedDown.Load(), h.closedUp.Load()
	return res
}

type netStream struct {
	*stream
	closedDown, closedUp atomic.Bool
}

func (s *netStream) Close(t hostabi.StreamType) {
	switch t {
	case hostabi.StreamDownstream:
		s.closedDown.Store(true)
	case hostabi.StreamUpstream:
		s.closedUp.Store(true)
	}
}
