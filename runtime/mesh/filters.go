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

// passFilter continues every callback; native filters embed it.
type passFilter struct{}

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

	// lastXFCC is the inbound side's last x-forwarded-client-cert value:
	// a sidecar's callers are few and keep their connections, so most
	// requests reuse it instead of building the same string again.
	lastXFCC atomic.Pointer[xfccEntry]
}

// xfccEntry is an XFCC value and what it was made of: the connection's
// TLS facts (one value per connection, kept alive by the entry, so the
// pointer cannot name another connection's) and this workload's ID then.
type xfccEntry struct {
	tls   *filter.TLSInfo
	by    string
	value string
}

// xfcc is XFCC(f.local(), the peer's certificate hash, peer) for the
// connection whose TLS facts are tls.
func (f *HeadersFactory) xfcc(tls *filter.TLSInfo, peer string) string {
	by := f.local()
	if e := f.lastXFCC.Load(); e != nil && e.tls == tls && e.by == by {
		return e.value
	}
	v := XFCC(by, tls.PeerCertSHA256, peer)
	f.lastXFCC.Store(&xfccEntry{tls: tls, by: by, value: v})
	return v
}

// NewHeadersFactory returns the inbound (true) or outbound filter factory.
// local may be nil when there is no identity.
func NewHeadersFactory(inbound bool, local func() string) *HeadersFactory {
	if local == nil {
		local = func() string { return "" }
	}
	return &HeadersFactory{inbound: inbound, local: local}
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
	return headersFilter{f: f}, nil
}

type headersFilter struct {
	passFilter
	f *HeadersFactory
}

func (h headersFilter) OnRequestHeaders(s filter.Stream, _ bool) Status {
	hdr := s.RequestHeaders()
	hdr.Del(XFCCHeader)
	if h.f.inbound {
		info := s.Info()
		if peer := PeerID(info); peer != "" {
			hdr.Set(XFCCHeader, h.f.xfcc(info.TLS, peer))
			if info.FilterState == nil {
				info.FilterState = map[string][]byte{}
			}
			info.FilterState[PropSourcePrincipal] = []byte(peer)
			if ns := namespaceOf(peer); ns != "" {
				info.FilterState[PropSourceNamespace] = []byte(ns)
			}
		}
	}
	prior, _ := hdr.Get("traceparent")
	tp, started := NextTraceparent(string(prior))
	hdr.Set("traceparent", tp)
	if started {
		hdr.Del("tracestate")
	}
	return filter.Continue
}

// OnLog counts the request by identities.
func (h headersFilter) OnLog(s filter.Stream) { h.f.record(s) }
