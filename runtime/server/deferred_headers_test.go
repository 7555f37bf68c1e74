package server

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
)

// TestDeferredResponseHeadersInChain: cors and rate-limiting hand their
// response headers to the host at request time (sluice's
// sluice_defer_response_headers) and skip their response callback, yet
// through a real proxy the response is what their callbacks made before:
// the edits land at each filter's place in the reverse-order response
// chain, so a later filter's edits of the same headers (response-
// transformer appending Vary, Access-Control-Allow-Origin and
// RateLimit-Limit) come first and theirs after. A local reply (a later
// filter refusing the request, or the host finding no upstream) passes
// back through the filters the request reached, as in Envoy and Kong, so
// it carries the same headers (a browser can read a 401 only with its
// CORS headers); a filter the request never reached adds nothing.
func TestDeferredResponseHeadersInChain(t *testing.T) {
	up := startEcho(t, "up", nil)
	// A port nothing listens on: the host answers 503 itself.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	ts := startServer(t, baseConfig(`
[[plugins]]
name = "cors"
wasm = "builtin:cors"
config = { origins = ["https://app.example.com"], credentials = true }

[[plugins]]
name = "limit"
wasm = "builtin:rate-limiting"
config = { minute = 1000, limit_by = "ip" }

[[plugins]]
name = "rt"
wasm = "builtin:response-transformer"
config = { append = { headers = ["vary:X-RT", "access-control-allow-origin:https://rt.example", "ratelimit-limit:999"] } }

[[plugins]]
name = "auth"
wasm = "builtin:key-auth"
config = { keys = [ { key = "k1", consumer = "alice" } ] }

[[routes]]
name = "dead"
match = { path_prefix = "/dead" }
plugins = ["cors", "limit", "rt"]
backends = [ { cluster = "dead" } ]

[[routes]]
name = "late"
match = { path_prefix = "/late" }
plugins = ["auth", "cors"]
backends = [ { cluster = "up" } ]

[[routes]]
name = "r"
plugins = ["cors", "limit", "rt", "auth"]
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["`+up.addr+`"]

[[clusters]]
name = "dead"
endpoints = ["`+dead+`"]
`))
	get := func(path, apikey string) *http.Response {
		t.Helper()
		req := mustReq(t, "GET", ts.url(path), nil)
		req.Header.Set("Origin", "https://app.example.com")
		if apikey != "" {
			req.Header.Set("apikey", apikey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	check := func(what string, resp *http.Response, remaining string) {
		t.Helper()
		for _, c := range []struct {
			name string
			want []string
		}{
			// cors adds Vary after response-transformer's, and replaces its
			// Access-Control-Allow-Origin; rate-limiting replaces its
			// RateLimit-Limit.
			{"Vary", []string{"X-RT", "Origin"}},
			{"Access-Control-Allow-Origin", []string{"https://app.example.com"}},
			{"Access-Control-Allow-Credentials", []string{"true"}},
			{"Ratelimit-Limit", []string{"1000"}},
			{"X-Ratelimit-Limit-Minute", []string{"1000"}},
			{"X-Ratelimit-Remaining-Minute", []string{remaining}},
		} {
			if got := resp.Header.Values(c.name); !slices.Equal(got, c.want) {
				t.Errorf("%s: %s = %q, want %q", what, c.name, got, c.want)
			}
		}
	}
	for i, c := range []struct {
		name, path, apikey string
		status             int
	}{
		{"upstream's answer", "/", "k1", 200},
		{"refused by a later filter", "/", "", 401},
		{"no upstream", "/dead", "", 503},
	} {
		resp := get(c.path, c.apikey)
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d", c.name, resp.StatusCode, c.status)
		}
		check(c.name, resp, strconv.Itoa(999-i))
	}
	// key-auth refuses before cors: the 401 never reached it.
	resp := get("/late", "")
	if resp.StatusCode != 401 {
		t.Fatalf("/late: status %d, want 401", resp.StatusCode)
	}
	for _, h := range []string{"Vary", "Access-Control-Allow-Origin"} {
		if v := resp.Header.Values(h); v != nil {
			t.Errorf("/late: the reply of the filter before cors has %s %q", h, v)
		}
	}
}
