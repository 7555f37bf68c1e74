package plugins

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// These run each plugin inside the compiled module on the fake host, so
// the SDK glue (hostcalls, local replies, properties, ticks, shared data)
// is exercised as the proxy will exercise it. Decision logic is tested
// table by table beside each plugin's source in src/.

func mustStart(t *testing.T, g *guest, name, config string) uint32 {
	t.Helper()
	id, ok := g.startPlugin(name, config)
	if !ok {
		t.Fatalf("%s refused %s: %q", name, config, g.h.logs)
	}
	return id
}

func TestKeyAuthInModule(t *testing.T) {
	g := newGuest(t)
	root := mustStart(t, g, "key-auth", `{"hide_credentials":true,"keys":[{"key":"k1","consumer":"alice"}]}`)
	s := g.newStream(root)
	if a := s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/users"}}, true); a != 1 {
		t.Errorf("no key: action %d, want pause", a)
	}
	if g.h.local == nil || g.h.local.status != 401 || !strings.Contains(g.h.local.body, "No API key") {
		t.Fatalf("no key: local reply %+v", g.h.local)
	}
	s.end()
	s = g.newStream(root)
	s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/users?apikey=k1&x=1"}, {"x-consumer-username", "mallory"},
		{"x-anonymous-consumer", "true"}}, true)
	if g.h.local != nil {
		t.Fatalf("valid key refused: %+v", g.h.local)
	}
	if v, _ := getHeader(g.h.maps[0], "x-consumer-username"); v != "alice" {
		t.Errorf("consumer header = %q, want alice", v)
	}
	if v := string(g.h.props["sluice.consumer"]); v != "alice" {
		t.Errorf("sluice.consumer property = %q, want alice", v)
	}
	if n := len(g.h.maps[0]); n != 4 {
		t.Errorf("request headers = %q, want the client's consumer headers replaced or removed", g.h.maps[0])
	}
	if _, ok := getHeader(g.h.maps[0], "x-anonymous-consumer"); ok {
		t.Error("a client-sent x-anonymous-consumer reached the upstream")
	}
	if v, _ := getHeader(g.h.maps[0], ":path"); v != "/users?x=1" {
		t.Errorf(":path = %q, want the key hidden", v)
	}
	s.end()
}

func TestRateLimitingInModule(t *testing.T) {
	g := newGuest(t)
	g.h.props["source\x00address"] = []byte("10.1.1.1:5555")
	root := mustStart(t, g, "rate-limiting", `{"minute":3,"limit_by":"ip"}`)
	for i := 1; i <= 4; i++ {
		s := g.newStream(root)
		s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}}, true)
		if i <= 3 {
			if g.h.local != nil {
				t.Fatalf("request %d limited: %+v", i, g.h.local)
			}
			s.responseHeaders([][2]string{{":status", "200"}}, false)
			if v, _ := getHeader(g.h.maps[2], "x-ratelimit-remaining-minute"); v != string(rune('0'+3-i)) {
				t.Errorf("request %d: remaining = %q (%q)", i, v, g.h.maps[2])
			}
		} else if g.h.local == nil || g.h.local.status != 429 || !strings.Contains(g.h.local.body, "API rate limit exceeded") {
			t.Errorf("4th request: %+v, want 429", g.h.local)
		} else if _, ok := getHeader(g.h.local.headers, "retry-after"); !ok {
			t.Errorf("429 without Retry-After: %q", g.h.local.headers)
		}
		s.end()
	}
	var key string
	for k := range g.h.shared {
		key = k
	}
	if !strings.Contains(key, "/local/rate-limiting/minute/ip:10.1.1.1") {
		t.Errorf("shared-data key = %q", key)
	}
}

func TestCORSPreflightInModule(t *testing.T) {
	g := newGuest(t)
	root := mustStart(t, g, "cors", `{"origins":["https://app.example.com"],"methods":["GET","POST","PUT","DELETE"]}`)
	s := g.newStream(root)
	s.requestHeaders([][2]string{{":method", "OPTIONS"}, {":path", "/api/v2/orders"}, {"origin", "https://app.example.com"},
		{"access-control-request-method", "PUT"}}, true)
	if g.h.local == nil || g.h.local.status != 200 {
		t.Fatalf("preflight not answered: %+v", g.h.local)
	}
	if v, _ := getHeader(g.h.local.headers, "access-control-allow-origin"); v != "https://app.example.com" {
		t.Errorf("ACAO = %q", v)
	}
	if v, _ := getHeader(g.h.local.headers, "access-control-allow-methods"); v != "GET,POST,PUT,DELETE" {
		t.Errorf("ACAM = %q", v)
	}
	s.end()
	s = g.newStream(root)
	s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}, {"origin", "https://app.example.com"}}, true)
	s.responseHeaders([][2]string{{":status", "200"}}, true)
	if v, _ := getHeader(g.h.maps[2], "access-control-allow-origin"); v != "https://app.example.com" {
		t.Errorf("response ACAO = %q", v)
	}
	s.end()
}

func TestCanaryInModule(t *testing.T) {
	g := newGuest(t)
	root := mustStart(t, g, "canary", `{"http":[{"match":[{"headers":{"x-canary":{"exact":"true"}}}],"route":[{"subset":"v2","weight":100}]},
		{"route":[{"subset":"v1","weight":90},{"subset":"v2","weight":10}]}]}`)
	s := g.newStream(root)
	s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}, {"x-canary", "true"}, {"x-sluice-subset", "evil"}}, true)
	if v, _ := getHeader(g.h.maps[0], "x-sluice-subset"); v != "v2" {
		t.Errorf("x-sluice-subset = %q, want v2", v)
	}
	if v := string(g.h.props["sluice.subset"]); v != "v2" {
		t.Errorf("property sluice.subset = %q, want v2", v)
	}
	n := 0
	for _, kv := range g.h.maps[0] {
		if kv[0] == "x-sluice-subset" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d x-sluice-subset headers, want the client's replaced", n)
	}
	s.end()
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		s := g.newStream(root)
		s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}}, true)
		v, _ := getHeader(g.h.maps[0], "x-sluice-subset")
		counts[v]++
		s.end()
	}
	if counts["v1"] < 300 || counts["v2"] < 10 || counts["v1"]+counts["v2"] != 400 {
		t.Errorf("400 requests split %v, want about 360/40", counts)
	}
}

func TestFaultInModule(t *testing.T) {
	g := newGuest(t)
	root := mustStart(t, g, "fault", `{"delay":{"fixedDelay":"1s"},"abort":{"httpStatus":503,"percentage":{"value":100}},"headers":{"x-fault":{"exact":"on"}}}`)
	if g.h.tickMs != 50 {
		t.Errorf("tick period = %d ms, want 50", g.h.tickMs)
	}
	s := g.newStream(root)
	if a := s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}}, true); a != 0 || g.h.local != nil {
		t.Fatalf("unmatched request: action %d reply %+v", a, g.h.local)
	}
	s.end()
	s = g.newStream(root)
	if a := s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}, {"x-fault", "on"}}, true); a != 1 {
		t.Fatalf("matched request: action %d, want pause for the delay", a)
	}
	g.call("proxy_on_tick", uint64(root))
	if g.h.local != nil {
		t.Fatal("aborted before the delay ended")
	}
	g.h.nowNanos += 1_000_000_000
	g.call("proxy_on_tick", uint64(root))
	if g.h.local == nil || g.h.local.status != 503 {
		t.Fatalf("after the delay: reply %+v, want 503", g.h.local)
	}
	if g.h.effCtx != s.id {
		t.Errorf("effective context = %d, want the stream %d", g.h.effCtx, s.id)
	}
	s.end()
}

func TestRequestTransformerBodyInModule(t *testing.T) {
	g := newGuest(t)
	root := mustStart(t, g, "request-transformer", `{"add":{"headers":["X-Request-Source:external"],"body":["source:edge"]},"remove":{"body":["password"]}}`)
	s := g.newStream(root)
	s.requestHeaders([][2]string{{":method", "POST"}, {":path", "/"}, {"content-type", "application/json"}, {"content-length", "30"}}, false)
	if v, _ := getHeader(g.h.maps[0], "x-request-source"); v != "external" {
		t.Errorf("x-request-source = %q", v)
	}
	if _, ok := getHeader(g.h.maps[0], "content-length"); ok {
		t.Error("content-length kept although the body changes")
	}
	if a := s.requestBody(`{"user":"a",`, false); a != 1 {
		t.Errorf("partial body: action %d, want pause (buffer)", a)
	}
	s.requestBody(`{"user":"a","password":"x"}`, true)
	if got := string(g.h.bodies[0]); got != `{"source":"edge","user":"a"}` {
		t.Errorf("body = %s", got)
	}
	s.end()
}

// The upstream's usage header counts and never reaches the client: by
// default sluice's X-Sluice-Limit and Kong's X-Kong-Limit (an upstream
// written for Kong keeps working), or the one header_name names.
func TestResponseRateLimitingInModule(t *testing.T) {
	for _, c := range []struct{ config, header string }{
		{`{"limits":{"sms":{"minute":2}}}`, "x-sluice-limit"},
		{`{"limits":{"sms":{"minute":2}}}`, "x-kong-limit"},
		{`{"limits":{"sms":{"minute":2}},"header_name":"X-Usage"}`, "x-usage"},
	} {
		t.Run(c.header, func(t *testing.T) {
			g := newGuest(t)
			root := mustStart(t, g, "response-ratelimiting", c.config)
			g.h.props["sluice.consumer"] = []byte("alice") // as key-auth or jwt would
			for i := 0; i < 3; i++ {
				s := g.newStream(root)
				s.requestHeaders([][2]string{{":method", "POST"}, {":path", "/users"}, {"x-consumer-username", "alice"}}, true)
				if i == 2 {
					if g.h.local == nil || g.h.local.status != 429 {
						t.Fatalf("third request: %+v, want 429", g.h.local)
					}
					s.end()
					break
				}
				s.responseHeaders([][2]string{{":status", "200"}, {c.header, "sms=1"}}, true)
				if _, ok := getHeader(g.h.maps[2], c.header); ok {
					t.Error("usage header reached the client")
				}
				if v, _ := getHeader(g.h.maps[2], "x-ratelimit-remaining-sms-minute"); v != string(rune('1'-i)) {
					t.Errorf("response %d: remaining = %q", i, v)
				}
				s.end()
			}
		})
	}
}

func TestJWTInModule(t *testing.T) {
	g := newGuest(t)
	root := mustStart(t, g, "jwt", `{"jwks_uri":"https://id.example.com/jwks.json","jwks_cluster":"idp","claims_to_verify":["exp"]}`)
	if len(g.h.calls) != 1 || g.h.calls[0].cluster != "idp" {
		t.Fatalf("JWKS fetch calls = %+v", g.h.calls)
	}
	if v, _ := getHeader(g.h.calls[0].headers, ":path"); v != "/jwks.json" {
		t.Errorf("JWKS :path = %q", v)
	}
	// A request with a token waits for the keys; a failed fetch answers 503.
	b64 := base64.RawURLEncoding.EncodeToString
	token := b64([]byte(`{"alg":"RS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"a","exp":1}`)) + "." + b64([]byte("sig"))
	s := g.newStream(root)
	if a := s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer " + token}}, true); a != 1 || g.h.local != nil {
		t.Fatalf("action %d reply %+v, want a pause while the JWKS is fetched", a, g.h.local)
	}
	g.call("proxy_on_http_call_response", uint64(root), 1, 0, 0, 0)
	if g.h.local == nil || g.h.local.status != 503 {
		t.Errorf("after a failed fetch: %+v, want 503", g.h.local)
	}
	s.end()
	// No token: 401 at once, with RFC 6750's challenge.
	s = g.newStream(root)
	s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}}, true)
	if g.h.local == nil || g.h.local.status != 401 {
		t.Fatalf("no token: %+v", g.h.local)
	}
	if v, _ := getHeader(g.h.local.headers, "www-authenticate"); v != `Bearer realm="sluice"` {
		t.Errorf("WWW-Authenticate = %q", v)
	}
	s.end()
}

func TestIPRestrictionTCPInModule(t *testing.T) {
	g := newGuest(t)
	root := mustStart(t, g, "ip-restriction", `{"deny":["192.0.2.0/24"]}`)
	for _, tc := range []struct {
		addr   string
		action uint64
		closed bool
	}{
		{"198.51.100.7:4000", 0, false},
		{"192.0.2.9:4000", 1, true},
	} {
		g.h.props["source\x00address"] = []byte(tc.addr)
		g.h.closed = nil
		id := g.next
		g.next++
		g.call("proxy_on_context_create", uint64(id), uint64(root))
		if a := g.call("proxy_on_new_connection", uint64(id)); a != tc.action {
			t.Errorf("%s: action %d, want %d", tc.addr, a, tc.action)
		}
		if got := len(g.h.closed) == 1 && g.h.closed[0] == 2; got != tc.closed {
			t.Errorf("%s: closed downstream = %v (%v), want %v", tc.addr, got, g.h.closed, tc.closed)
		}
		g.call("proxy_on_delete", uint64(id))
	}
}

func TestJWTWithFetchedJWKSInModule(t *testing.T) {
	g := newGuest(t)
	root := mustStart(t, g, "jwt", `{"jwks_uri":"https://id.example.com/jwks.json","jwks_cluster":"idp"}`)
	secret := []byte("0123456789abcdef0123456789abcdef")
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"alice"}`))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	token := input + "." + b64(m.Sum(nil))

	s := g.newStream(root)
	if a := s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer " + token}}, true); a != 1 {
		t.Fatalf("action %d, want a pause for the JWKS", a)
	}
	// The IdP answers; the waiting request is checked and resumed.
	g.h.maps[6] = [][2]string{{":status", "200"}}
	g.h.bodies[4] = []byte(`{"keys":[{"kty":"oct","kid":"k1","k":"` + b64(secret) + `"}]}`)
	g.h.resumed = nil
	g.call("proxy_on_http_call_response", uint64(root), 1, 1, uint64(len(g.h.bodies[4])), 0)
	if g.h.local != nil {
		t.Fatalf("valid token refused after the JWKS arrived: %+v (logs %q)", g.h.local, g.h.logs)
	}
	if len(g.h.resumed) != 1 || g.h.resumed[0] != 0 || g.h.effCtx != s.id {
		t.Errorf("resumed %v as context %d, want the request of stream %d", g.h.resumed, g.h.effCtx, s.id)
	}
	if v, _ := getHeader(g.h.maps[0], "x-consumer-username"); v != "alice" {
		t.Errorf("consumer = %q, want alice", v)
	}
	s.end()
	// Later requests are checked at once.
	s = g.newStream(root)
	if a := s.requestHeaders([][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer " + token + "x"}}, true); a != 1 || g.h.local == nil || g.h.local.status != 401 {
		t.Errorf("bad signature: action %d reply %+v, want 401", a, g.h.local)
	}
	s.end()
}
