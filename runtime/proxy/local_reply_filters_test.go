package proxy

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// marker is a test filter that stamps its name on every response head it
// sees (x-order, so the values give the order), behaves per request path
// on the request (answer with 401, pause) and on the response (answer
// again, pause, uppercase the body).
type marker struct {
	bodyJudge
	name string
}

func (m *marker) OnRequestHeaders(s filter.Stream, eos bool) filter.Status {
	path, _ := s.RequestHeaders().Get(":path")
	if strings.Contains(string(path), "deny-at-"+m.name) {
		s.SendLocalReply(filter.LocalReply{Status: 401, Body: []byte("no credentials\n"), Details: "denied_by_" + m.name})
		return filter.StopIteration
	}
	return filter.Continue
}

func (m *marker) OnResponseHeaders(s filter.Stream, eos bool) filter.Status {
	h := s.ResponseHeaders()
	h.Add("x-order", m.name)
	if eos {
		h.Add("x-eos-at-"+m.name, "1")
	}
	path, _ := s.RequestHeaders().Get(":path")
	switch {
	case strings.Contains(string(path), "rereply-at-"+m.name):
		s.SendLocalReply(filter.LocalReply{Status: 500, Body: []byte("answered again\n"), Details: "rereplied"})
		return filter.StopIteration
	case strings.Contains(string(path), "pause-at-"+m.name):
		time.AfterFunc(20*time.Millisecond, func() { s.Resume(filter.Response) })
		return filter.StopIteration
	}
	return filter.Continue
}

func (m *marker) OnResponseBody(s filter.Stream, b *filter.Body, eos bool) filter.Status {
	if path, _ := s.RequestHeaders().Get(":path"); strings.Contains(string(path), "upper-at-"+m.name) {
		b.Data = bytes.ToUpper(append(b.Data, "!"...))
	}
	return filter.Continue
}

// TestLocalReplyPassesBackThroughReachedFilters: a reply made before the
// response began goes back through the response callbacks of the filters
// the request reached, in reverse order, the one that made it included,
// as Envoy's filter manager encodes a local reply through its encoder
// filters: a filter before an authentication filter (CORS) can put its
// headers on the 401, and one after it is never called. A reply made
// there goes out as it is; a pause there holds the reply until resumed;
// the body passes the filters too, its length following; a HEAD's does
// not, and its head comes with end of stream. A reply of the proxy's own
// after the filters ran (no upstream) passes all of them.
func TestLocalReplyPassesBackThroughReachedFilters(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var fs []filter.Factory
	for _, n := range []string{"a", "b", "c"} {
		fs = append(fs, factory{name: n, mk: func() filter.HTTPFilter { return &marker{name: n} }})
	}
	decl, names, m := declarePlugins(fs)
	addr, _ := startProxyFilters(t, `
[[listeners]]
name = "public"
address = "127.0.0.1:0"
`+decl+`
[[routes]]
name = "f"
plugins = [`+names+`]
backends = [ { cluster = "dead" } ]
[[clusters]]
name = "dead"
endpoints = ["`+dead+`"]
`, m)
	rc := dialRaw(t, addr)

	for _, c := range []struct {
		method, path string
		status       int
		order        []string
		body         string
		eosAt        string
	}{
		{"GET", "/deny-at-b", 401, []string{"b", "a"}, "no credentials\n", ""},
		{"GET", "/deny-at-a", 401, []string{"a"}, "no credentials\n", ""},
		{"GET", "/up", 503, []string{"c", "b", "a"}, "upstream connect error\n", ""},
		{"GET", "/deny-at-c/rereply-at-b", 500, nil, "answered again\n", ""},
		{"GET", "/deny-at-b/pause-at-a", 401, []string{"b", "a"}, "no credentials\n", ""},
		{"GET", "/deny-at-c/upper-at-b", 401, []string{"c", "b", "a"}, "NO CREDENTIALS\n!", ""},
		{"HEAD", "/deny-at-b/upper-at-a", 401, []string{"b", "a"}, "", "a"},
	} {
		resp, body := rc.do(c.method, c.path, nil)
		got := resp.Header.Values("x-order")
		if resp.StatusCode != c.status || strings.Join(got, ",") != strings.Join(c.order, ",") || string(body) != c.body {
			t.Errorf("%s %s: %d, x-order %q, body %q; want %d, %q, %q", c.method, c.path, resp.StatusCode, got, body, c.status, c.order, c.body)
		}
		if c.eosAt != "" && resp.Header.Get("x-eos-at-"+c.eosAt) != "1" {
			t.Errorf("%s %s: filter %s did not see the head with end of stream: %v", c.method, c.path, c.eosAt, resp.Header)
		}
		if c.method != "HEAD" && resp.ContentLength != int64(len(body)) {
			t.Errorf("%s %s: content-length %d for %d bytes", c.method, c.path, resp.ContentLength, len(body))
		}
	}
}
