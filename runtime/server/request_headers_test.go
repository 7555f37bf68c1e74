package server

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client's Connection header nominates headers for removal. They go
// before filters run and before sluice adds its own, so a nomination can
// remove only what the client sent, never x-request-id, a Wasm-added header
// or the sidecar's x-forwarded-client-cert.
func TestConnectionNominationsRemovedBeforeFilters(t *testing.T) {
	up := startEcho(t, "up", nil)
	ts := startServer(t, baseConfig(`
[[plugins]]
name = "add"
wasm = "builtin:add-header"
config = { request_headers = { "x-added" = "by-filter" } }

[[routes]]
name = "all"
plugins = ["add"]
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]
`))
	client := &http.Client{Timeout: 10 * time.Second}

	t.Run("sluice's and the filter's headers survive", func(t *testing.T) {
		req := mustReq(t, "GET", ts.url("/"), nil)
		req.Header.Set("Connection", "x-request-id, x-added, x-client")
		req.Header.Set("X-Client", "gone")
		resp, e := getJSON(t, client, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := e.Header["X-Request-Id"]; len(got) != 1 || got[0] == "" {
			t.Errorf("x-request-id upstream = %v: a client nomination removed sluice's", got)
		}
		if got := e.Header["X-Added"]; len(got) != 1 || got[0] != "by-filter" {
			t.Errorf("x-added upstream = %v: a client nomination removed the filter's", got)
		}
		if got, ok := e.Header["X-Client"]; ok {
			t.Errorf("nominated client header reached the upstream: %v", got)
		}
	})

	t.Run("a nominated client x-request-id is replaced by sluice's", func(t *testing.T) {
		req := mustReq(t, "GET", ts.url("/"), nil)
		req.Header.Set("Connection", "x-request-id")
		req.Header.Set("X-Request-Id", "client-id")
		_, e := getJSON(t, client, req)
		if got := e.Header["X-Request-Id"]; len(got) != 1 || got[0] == "client-id" || got[0] == "" {
			t.Errorf("x-request-id upstream = %v, want one sluice made", got)
		}
	})

	// Envoy's refusals (sanitizeConnectionHeader): removing X-Forwarded-*
	// would hide where the request came from; pseudo-headers are never
	// nominated; ten or more options is a malformed request.
	for name, conn := range map[string]string{
		"x-forwarded-for":   "x-forwarded-for",
		"x-forwarded-host":  "keep-alive, X-Forwarded-Host",
		"x-forwarded-proto": "x-forwarded-proto",
		"pseudo-header":     ":authority",
		"ten options":       "a, b, c, d, e, f, g, h, i, j",
	} {
		t.Run("400 for "+name, func(t *testing.T) {
			req := mustReq(t, "GET", ts.url("/"), nil)
			req.Header.Set("Connection", conn)
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("Connection: %s: status %d %q, want 400", conn, resp.StatusCode, body)
			}
		})
	}
}

// On a sidecar's inbound side, a peer that nominates
// x-forwarded-client-cert cannot make sluice drop the XFCC it sets.
func TestConnectionNominationKeepsSidecarXFCC(t *testing.T) {
	m := startTwoSidecars(t, "", "")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: m.pki.clientTLS(m.aCert, m.aKey)}}
	req := mustReq(t, "GET", "https://"+m.b.ListenerAddr("inbound")+"/x", nil)
	req.Header.Set("Connection", "x-forwarded-client-cert")
	resp, e := getJSON(t, c, req)
	if resp.StatusCode != 200 || e.Name != "app" {
		t.Fatalf("status %d, reply %+v", resp.StatusCode, e)
	}
	xfcc := e.Header["X-Forwarded-Client-Cert"]
	if len(xfcc) != 1 || !strings.Contains(xfcc[0], "URI="+idOrders) {
		t.Fatalf("x-forwarded-client-cert at the app = %v, want the peer's URI", xfcc)
	}
}

// A client cannot pick a subset: x-sluice-subset (and any x-sluice-*
// header) from the client is removed at entry, and the backend picker
// takes a subset only from a filter's property on the stream.
func TestClientCannotPickSubset(t *testing.T) {
	v1 := startEcho(t, "v1", nil)
	v2 := startEcho(t, "v2", nil)
	ts := startServer(t, baseConfig(`
[[routes]]
name = "orders"
backends = [ { cluster = "orders", subset = { version = "v1" }, weight = 100 },
             { cluster = "orders", subset = { version = "v2" }, weight = 0 } ]
[[clusters]]
name = "orders"
labeled_endpoints = [ { address = "`+v1.addr+`", labels = { version = "v1" } },
                      { address = "`+v2.addr+`", labels = { version = "v2" } } ]
`))
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 20; i++ {
		req := mustReq(t, "GET", ts.url("/"), nil)
		req.Header.Set("X-Sluice-Subset", "v2")
		req.Header.Set("X-Sluice-Other", "1")
		resp, e := getJSON(t, client, req)
		if resp.StatusCode != 200 || e.Name != "v1" {
			t.Fatalf("request %d with x-sluice-subset: v2 reached %q (status %d); v2 is dark (weight 0)", i, e.Name, resp.StatusCode)
		}
		for _, h := range []string{"X-Sluice-Subset", "X-Sluice-Other"} {
			if v, ok := e.Header[h]; ok {
				t.Fatalf("client's %s reached the upstream: %v", h, v)
			}
		}
	}
}
