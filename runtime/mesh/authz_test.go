package mesh

import (
	"testing"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

func TestPatterns(t *testing.T) {
	for _, tc := range []struct {
		p, v string
		want bool
	}{
		{"/pay", "/pay", true},
		{"/pay", "/pay/", false},
		{"/pay/*", "/pay/1", true},
		{"/pay/*", "/pay", false},
		{"*/health", "/a/health", true},
		{"*/health", "/a/healthz", false},
		{"*", "anything", true},
		{"*", "", false},
	} {
		if got := compilePattern(tc.p).match(tc.v); got != tc.want {
			t.Errorf("%q ~ %q = %v", tc.p, tc.v, got)
		}
	}
}

func infoFor(peer string) *filter.Info {
	if peer == "" {
		return &filter.Info{}
	}
	return &filter.Info{TLS: &filter.TLSInfo{MTLS: true, PeerURISANs: []string{peer}}}
}

func TestAuthorizerOrder(t *testing.T) {
	a, err := NewAuthorizer([]config.Authorization{
		{Action: "DENY", To: config.AuthTo{Methods: []string{"DELETE"}}},
		{Action: "ALLOW", From: config.AuthFrom{Principals: []string{"example.org/ns/default/sa/orders"}}, To: config.AuthTo{Paths: []string{"/pay/*"}}},
		{Action: "ALLOW", From: config.AuthFrom{Namespaces: []string{"ops*"}}},
		{Action: "ALLOW", When: []config.HeaderMatch{{Name: "request.headers[x-token]", Regex: "t[0-9]+"}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const orders = "spiffe://example.org/ns/default/sa/orders"
	for _, tc := range []struct {
		method, path, peer string
		hdr                map[string]string
		want               bool
	}{
		{"GET", "/pay/1", orders, nil, true},     // principal without scheme, as Istio writes it
		{"DELETE", "/pay/1", orders, nil, false}, // DENY before ALLOW
		{"GET", "/other", orders, nil, false},    // an ALLOW exists, none matches
		{"GET", "/pay/1", "", nil, false},        // plain text has no principal
		{"GET", "/x", "spiffe://example.org/ns/ops-1/sa/y", nil, true},
		{"GET", "/x", "", map[string]string{"X-Token": "t42"}, true},
		{"GET", "/x", "", map[string]string{"X-Token": "t42x"}, false}, // regex matches the whole value
	} {
		r := requestMap(tc.method, tc.path)
		for k, v := range tc.hdr {
			r.Set(k, v)
		}
		if got, _ := a.Decide(r, infoFor(tc.peer)); got != tc.want {
			t.Errorf("%s %s from %q %v: allowed=%v, want %v", tc.method, tc.path, tc.peer, tc.hdr, got, tc.want)
		}
	}
	// DENY only: everything else is allowed.
	d, _ := NewAuthorizer([]config.Authorization{{Action: "DENY", From: config.AuthFrom{Principals: []string{"*"}}, To: config.AuthTo{Paths: []string{"/admin*"}}}}, nil)
	if ok, _ := d.Decide(requestMap("GET", "/x"), infoFor(orders)); !ok {
		t.Error("DENY-only policy denied an unmatched request")
	}
	if ok, _ := d.Decide(requestMap("GET", "/admin/x"), infoFor(orders)); ok {
		t.Error("DENY did not deny")
	}
	// No policies: nothing to run.
	if n, _ := NewAuthorizer(nil, nil); n.Factories() != nil {
		t.Error("filters for no policies")
	}
	if _, err := NewAuthorizer([]config.Authorization{{Action: "CUSTOM", Plugin: "missing"}}, map[string]filter.Factory{}); err == nil {
		t.Error("CUSTOM with an unknown plugin accepted")
	}
}

func TestTraceparent(t *testing.T) {
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	out, started := next(in)
	if started || TraceID(out) != "4bf92f3577b34da6a3ce929d0e0e4736" || out[53:] != "01" || out[36:52] == "00f067aa0ba902b7" {
		t.Errorf("next of %q = %q (started %v)", in, out, started)
	}
	for _, bad := range []string{
		"",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
	} {
		out, started := next(bad)
		if !started || TraceID(out) == "" || out[53:] != "01" {
			t.Errorf("from %q: %q started=%v", bad, out, started)
		}
	}
	// A later version keeps its trace, read by the first four fields.
	if out, started := next("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more"); started || TraceID(out) == "" || out[53:] != "00" {
		t.Errorf("version 01: %q started=%v", out, started)
	}
}

func TestXFCC(t *testing.T) {
	got := XFCC("spiffe://example.org/ns/a/sa/b", "abc", "spiffe://example.org/ns/c/sa/d")
	if want := "By=spiffe://example.org/ns/a/sa/b;Hash=abc;URI=spiffe://example.org/ns/c/sa/d"; got != want {
		t.Errorf("XFCC = %q, want %q", got, want)
	}
	if got := XFCC("", "h", "spiffe://x/a;b"); got != `Hash=h;URI="spiffe://x/a;b"` {
		t.Errorf("quoted: %q", got)
	}
	if PeerID(&filter.Info{TLS: &filter.TLSInfo{MTLS: true, PeerURISANs: []string{"https://x", "spiffe://td/p"}}}) != "spiffe://td/p" {
		t.Error("PeerID")
	}
}

// requestMap is a request's header map as a codec delivers it.
func requestMap(method, path string) *stream.HeaderMap {
	var h stream.HeaderMap
	h.Add(stream.Method, method)
	h.Add(stream.Path, path)
	h.Add(stream.Authority, "b")
	h.Add(stream.Scheme, "http")
	return &h
}
