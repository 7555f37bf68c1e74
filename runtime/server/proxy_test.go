package server

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

func TestProxyForwardsAndRoutes(t *testing.T) {
	v1 := startEcho(t, "v1", nil)
	v2 := startEcho(t, "v2", nil)
	ts := startServer(t, baseConfig(`
[[routes]]
name = "orders"
match = { path_prefix = "/api/orders", methods = ["GET", "POST"] }
strip_prefix = true
backends = [ { cluster = "v2" } ]

[[routes]]
name = "host"
match = { hosts = ["*.example.com"], path_prefix = "/" }
host_rewrite = "internal.local"
backends = [ { cluster = "v2" } ]

[[routes]]
name = "default"
match = { path_prefix = "/" , headers = [ { name = "x-absent", absent = true } ] }
backends = [ { cluster = "v1" } ]

[[clusters]]
name = "v1"
endpoints = ["`+v1.addr+`"]

[[clusters]]
name = "v2"
endpoints = ["`+v2.addr+`"]
`))
	c := &http.Client{}
	cases := []struct {
		name, method, path, host string
		header                   map[string]string
		status                   int
		upstream, upPath, upHost string
	}{
		{"prefix with strip", "GET", "/api/orders/42?x=1", "", nil, 200, "v2", "/42?x=1", ""},
		{"method not allowed falls through", "DELETE", "/api/orders/42", "", nil, 200, "v1", "/api/orders/42", ""},
		{"wildcard host with rewrite", "GET", "/a", "shop.example.com", nil, 200, "v2", "/a", "internal.local"},
		{"header absent fails", "GET", "/a", "", map[string]string{"X-Absent": "1"}, 404, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := mustReq(t, tc.method, ts.url(tc.path), nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, e := getJSON(t, c, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if e.Name != tc.upstream || e.Path != tc.upPath {
				t.Fatalf("reached %s %s, want %s %s", e.Name, e.Path, tc.upstream, tc.upPath)
			}
			if tc.upHost != "" && e.Host != tc.upHost {
				t.Fatalf("upstream host %q, want %q", e.Host, tc.upHost)
			}
			if e.Header["X-Request-Id"] == nil || e.Header["X-Forwarded-For"][0] != "127.0.0.1" || e.Header["X-Forwarded-Proto"][0] != "http" {
				t.Fatalf("forwarding headers missing: %v", e.Header)
			}
		})
	}
}

func TestHopByHopHeadersStripped(t *testing.T) {
	up := startEcho(t, "up", nil)
	ts := startServer(t, baseConfig(`
[[routes]]
name = "all"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	req := mustReq(t, "GET", ts.url("/"), nil)
	req.Header.Set("Connection", "X-Secret, keep-alive")
	req.Header.Set("X-Secret", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic Zm9v")
	req.Header.Set("X-Request-Id", "given-id")
	resp, e := getJSON(t, http.DefaultClient, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, h := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization", "Connection"} {
		if _, ok := e.Header[h]; ok {
			t.Errorf("hop-by-hop header %s reached the upstream", h)
		}
	}
	if got := e.Header["X-Request-Id"]; len(got) != 1 || got[0] != "given-id" {
		t.Errorf("x-request-id %v, want the client's", got)
	}
}

func TestNoRouteIs404(t *testing.T) {
	ts := startServer(t, baseConfig(`
[[routes]]
name = "only"
match = { path = "/exact" }
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:1"]
`))
	resp, err := http.Get(ts.url("/other"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), "no route") {
		t.Fatalf("got %d %q, want 404 no route", resp.StatusCode, b)
	}
}

func TestH2CPriorKnowledgeAndPOSTBody(t *testing.T) {
	up := startEcho(t, "up", nil)
	ts := startServer(t, baseConfig(`
[[routes]]
name = "all"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	tr := &http2.Transport{AllowHTTP: true}
	tr.DialTLS = func(network, addr string, _ *tls.Config) (net.Conn, error) { return net.Dial(network, addr) }
	c := &http.Client{Transport: tr}
	resp, e := getJSON(t, c, mustReq(t, "POST", ts.url("/h2"), strings.NewReader("hello body")))
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("status %d proto %s", resp.StatusCode, resp.Proto)
	}
	if e.Body != "hello body" || e.Method != "POST" {
		t.Fatalf("upstream saw %s %q", e.Method, e.Body)
	}
}
