package mesh

import (
	"context"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// testStream is a filter.Stream with a request head and Info only.
type testStream struct {
	req  stream.HeaderMap
	info filter.Info
}

func (s *testStream) Context() context.Context            { return context.Background() }
func (s *testStream) RequestHeaders() *stream.HeaderMap   { return &s.req }
func (s *testStream) RequestTrailers() *stream.HeaderMap  { return nil }
func (s *testStream) ResponseHeaders() *stream.HeaderMap  { return nil }
func (s *testStream) ResponseTrailers() *stream.HeaderMap { return nil }
func (s *testStream) Resume(filter.Direction)             {}
func (s *testStream) SendLocalReply(filter.LocalReply)    {}
func (s *testStream) Info() *filter.Info                  { return &s.info }

// The inbound side's XFCC is built once per connection and local ID, and
// follows both: a request on another connection gets its peer's value, a
// rotated local certificate its new ID. A client's own XFCC never passes.
func TestInboundXFCCPerConnection(t *testing.T) {
	local := "spiffe://example.org/ns/b/sa/app"
	f := NewHeadersFactory(true, func() string { return local })
	conn := func(peer, hash string) *filter.TLSInfo {
		return &filter.TLSInfo{MTLS: true, PeerURISANs: []string{peer}, PeerCertSHA256: hash}
	}
	c1 := conn("spiffe://example.org/ns/a/sa/one", "h1")
	c2 := conn("spiffe://example.org/ns/a/sa/two", "h2")
	xfcc := func(tls *filter.TLSInfo) string {
		s := &testStream{info: filter.Info{TLS: tls}}
		s.req.Add(XFCCHeader, "By=forged")
		flt, _ := f.NewFilter(context.Background(), s)
		if st := flt.OnRequestHeaders(s, true); st != filter.Continue {
			t.Fatalf("status %v", st)
		}
		n := 0
		for range s.req.Values(XFCCHeader) {
			n++
		}
		if n != 1 {
			t.Fatalf("%d XFCC values: want exactly ours", n)
		}
		v, _ := s.req.Get(XFCCHeader)
		return string(v)
	}
	want := func(tls *filter.TLSInfo) string { return XFCC(local, tls.PeerCertSHA256, tls.PeerURISANs[0]) }
	for i, c := range []*filter.TLSInfo{c1, c1, c2, c1, c2, c2} {
		if got := xfcc(c); got != want(c) {
			t.Fatalf("request %d: XFCC %q, want %q", i, got, want(c))
		}
	}
	local = "spiffe://example.org/ns/b/sa/rotated"
	if got := xfcc(c2); got != want(c2) {
		t.Fatalf("after rotation: XFCC %q, want %q", got, want(c2))
	}
	allocs := testing.AllocsPerRun(100, func() { f.peer(c2, c2.PeerURISANs[0]) })
	if allocs != 0 {
		t.Fatalf("%v allocations for the same connection's XFCC; want 0", allocs)
	}
}
