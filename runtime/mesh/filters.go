package mesh

import (
	"context"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// Names of the native filters the server puts first on sidecar listeners.
// The ':' keeps them apart from plugin names.
const (
	InboundHeadersFilter  = "sluice:mesh-inbound"
	OutboundHeadersFilter = "sluice:mesh-outbound"
	AuthorizationFilter   = "sluice:rbac"
)

// Properties the inbound side sets for later filters (Istio's names).
const (
	PropSourcePrincipal = "source.principal"
	PropSourceNamespace = "source.namespace"
)

// passFilter continues every callback; native filters embed it. None of
// them keeps its stream past its own callbacks, so each is done with it
// once OnDone returns (filter.Finisher): the proxy then reuses the
// stream's memory, as on a route without filters. Each filter that
// embeds passFilter names the callbacks it implements (filter.Skipper,
// through skipAllBut), so that the proxy leaves the bodies untouched.
type passFilter struct{}

// DoneIsFinal implements filter.Finisher.
func (passFilter) DoneIsFinal() bool { return true }

// allCallbacks is every filter.Callbacks bit.
const allCallbacks = filter.LogCallback<<1 - 1

// skipAllBut is the filter.Skipper answer of a filter that implements
// only the callbacks in used.
func skipAllBut(used filter.Callbacks) filter.Callbacks { return allCallbacks &^ used }

// noFilter is the filter of a stream a native filter has nothing to do
// on.
type noFilter struct{ passFilter }

// SkippedCallbacks implements filter.Skipper: all of them.
func (noFilter) SkippedCallbacks() filter.Callbacks { return allCallbacks }

func (passFilter) OnRequestHeaders(filter.Stream, bool) Status             { return filter.Continue }
func (passFilter) OnRequestBody(filter.Stream, *filter.Body, bool) Status  { return filter.Continue }
func (passFilter) OnRequestTrailers(filter.Stream) Status                  { return filter.Continue }
func (passFilter) OnResponseHeaders(filter.Stream, bool) Status            { return filter.Continue }
func (passFilter) OnResponseBody(filter.Stream, *filter.Body, bool) Status { return filter.Continue }
func (passFilter) OnResponseTrailers(filter.Stream) Status                 { return filter.Continue }
func (passFilter) OnLog(filter.Stream)                                     {}
func (passFilter) OnDone(filter.Stream)                                    {}

// Status is filter.Status, shortened for the method sets above.
type Status = filter.Status

// HeadersFactory makes the per-hop header filter of a sidecar listener:
//
//   - x-forwarded-client-cert sent by the client is removed on both sides
//     (it cannot be trusted); on the inbound side, for an mTLS peer, it is
//     set to By=<this workload>;Hash=<peer cert sha256>;URI=<peer ID>.
//   - the peer's ID and namespace become the source.principal and
//     source.namespace properties for the filters after it.
//   - traceparent gets a new span id (a new trace when absent or invalid).
type HeadersFactory struct {
	inbound bool
	// local is this workload's ID now (it follows certificate rotation).
	local func() string
	// Metrics, when set, counts each request by identities (on_log).
	Metrics *Metrics
	// ClusterIdentity names the identity each outbound cluster must prove,
	// for the outbound side's destination_principal.
	ClusterIdentity map[string]string

	// lastPeer is what the inbound side last made of a peer: a sidecar's
	// callers are few and keep their connections, so most requests reuse
	// it instead of building the same values again.
	lastPeer atomic.Pointer[peerEntry]

	// filter is the one filter value every stream gets: it holds nothing
	// of a stream, and a pointer to it goes into the chain without an
	// allocation.
	filter headersFilter
}

// peerEntry is what the inbound side sets for the peer of a connection:
// its XFCC value and its properties. It holds the connection's TLS facts
// (one value per connection, kept alive by the entry, so the pointer
// cannot name another connection's) and this workload's ID then. The
// property values are shared by the streams of the connection: a filter
// state value is replaced, never written in place (SetProperty).
type peerEntry struct {
	tls       *filter.TLSInfo
	by        string
	xfcc      string
	principal []byte
	namespace []byte // nil: the ID names no namespace
}

// peer is the entry of peer, the mTLS peer of the connection whose TLS
// facts are tls.
func (f *HeadersFactory) peer(tls *filter.TLSInfo, peer string) *peerEntry {
	by := f.local()
	if e := f.lastPeer.Load(); e != nil && e.tls == tls && e.by == by {
		return e
	}
	e := &peerEntry{tls: tls, by: by, xfcc: XFCC(by, tls.PeerCertSHA256, peer), principal: []byte(peer)}
	if ns := namespaceOf(peer); ns != "" {
		e.namespace = []byte(ns)
	}
	f.lastPeer.Store(e)
	return e
}

// NewHeadersFactory returns the inbound (true) or outbound filter factory.
// local may be nil when there is no identity.
func NewHeadersFactory(inbound bool, local func() string) *HeadersFactory {
	if local == nil {
		local = func() string { return "" }
	}
	f := &HeadersFactory{inbound: inbound, local: local}
	f.filter.f = f
	return f
}

// Name implements filter.Factory.
func (f *HeadersFactory) Name() string {
	if f.inbound {
		return InboundHeadersFilter
	}
	return OutboundHeadersFilter
}

// FailOpen implements filter.Factory; a native filter never fails to make.
func (f *HeadersFactory) FailOpen() bool { return false }

// NewFilter implements filter.Factory.
func (f *HeadersFactory) NewFilter(context.Context, filter.Stream) (filter.HTTPFilter, error) {
	return &f.filter, nil
}

type headersFilter struct {
	passFilter
	f *HeadersFactory
}

// SkippedCallbacks implements filter.Skipper.
func (*headersFilter) SkippedCallbacks() filter.Callbacks {
	return skipAllBut(filter.RequestHeadersCallback | filter.LogCallback)
}

var traceparentName = []byte("traceparent")

func (h *headersFilter) OnRequestHeaders(s filter.Stream, _ bool) Status {
	hdr := s.RequestHeaders()
	hdr.Del(XFCCHeader)
	if h.f.inbound {
		info := s.Info()
		if peer := PeerID(info); peer != "" {
			e := h.f.peer(info.TLS, peer)
			hdr.Set(XFCCHeader, e.xfcc)
			if info.FilterState == nil {
				info.FilterState = map[string][]byte{}
			}
			info.FilterState[PropSourcePrincipal] = e.principal
			if e.namespace != nil {
				info.FilterState[PropSourceNamespace] = e.namespace
			}
		}
	}
	prior, _ := hdr.Get("traceparent")
	var tp [traceparentLen]byte
	started := nextTraceparent(&tp, prior)
	hdr.SetBytes(traceparentName, tp[:])
	if started {
		hdr.Del("tracestate")
	}
	return filter.Continue
}

// OnLog counts the request by identities.
func (h *headersFilter) OnLog(s filter.Stream) { h.f.record(s) }
