package realhost

// Each built-in inside its compiled module on sluice's host, in the module
// sluice serves it from and in its Go original (goref), so the SDK glue
// (hostcalls, local replies, properties, ticks, http_calls, shared data)
// is exercised as the proxy exercises it. Decision logic is tested table
// by table beside each plugin's source.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
	"github.com/sluice-proxy/sluice/plugins/goref"
)

// loader loads the module under test with o (its Name and RootID are
// the plugin's).
type loader func(t *testing.T, o filtertest.Options) (*filtertest.Filter, error)

// module is a module a built-in runs from.
type module struct {
	lang string
	wasm []byte
}

// modules are built-in name's modules: the one sluice serves it from
// ("rust") and its Go original ("go").
func modules(name string) []module {
	return []module{{"rust", plugins.RustModule(name)}, {"go", goref.Module()}}
}

// eachModule runs test on each of built-in name's modules, as subtests.
func eachModule(t *testing.T, name string, test func(t *testing.T, load loader)) {
	for _, m := range modules(name) {
		t.Run(m.lang, func(t *testing.T) {
			test(t, func(t *testing.T, o filtertest.Options) (*filtertest.Filter, error) {
				t.Helper()
				o.Name, o.RootID = name, name
				return filtertest.LoadErr(t, m.wasm, o)
			})
		})
	}
}

// mustLoad is load failing the test on a refusal.
func mustLoad(t *testing.T, load loader, o filtertest.Options) *filtertest.Filter {
	t.Helper()
	f, err := load(t, o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// values are a header's values in a header list.
func values(h [][2]string, k string) []string {
	var vs []string
	for _, kv := range h {
		if strings.EqualFold(kv[0], k) {
			vs = append(vs, kv[1])
		}
	}
	return vs
}

func TestKeyAuthInModule(t *testing.T) {
	eachModule(t, "key-auth", func(t *testing.T, load loader) {
		f := mustLoad(t, load, filtertest.Options{Config: `{"hide_credentials":true,"keys":[{"key":"k1","consumer":"alice"}]}`})
		r := f.Do(filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/users"}}})
		if r.Local == nil || r.Local.Status != 401 || !strings.Contains(string(r.Local.Body), "No API key") {
			t.Fatalf("no key: local reply %+v", r.Local)
		}
		r = f.Do(filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/users?apikey=k1&x=1"},
			{":authority", "example.com"}, {"x-consumer-username", "mallory"}, {"x-anonymous-consumer", "true"}}})
		if r.Local != nil {
			t.Fatalf("valid key refused: %+v", r.Local)
		}
		if v, _ := r.RequestHeader("x-consumer-username"); v != "alice" {
			t.Errorf("consumer header = %q, want alice", v)
		}
		if v := string(r.Properties["sluice.consumer"]); v != "alice" {
			t.Errorf("sluice.consumer property = %q, want alice", v)
		}
		// :method, :path, :authority and the consumer's name and id: the
		// client's consumer headers replaced or removed.
		if n := len(r.RequestHeaders); n != 5 {
			t.Errorf("request headers = %q, want the client's consumer headers replaced or removed", r.RequestHeaders)
		}
		if _, ok := r.RequestHeader("x-anonymous-consumer"); ok {
			t.Error("a client-sent x-anonymous-consumer reached the upstream")
		}
		if v, _ := r.RequestHeader(":path"); v != "/users?x=1" {
			t.Errorf(":path = %q, want the key hidden", v)
		}
	})
}

// keyStore is a shared store that remembers the keys set in it.
type keyStore struct {
	*hostabi.MemoryStore
	mu   sync.Mutex
	keys []string
}

func (s *keyStore) Set(ctx context.Context, vmID, key string, val []byte, cas uint32) error {
	s.mu.Lock()
	if !slices.Contains(s.keys, key) {
		s.keys = append(s.keys, key)
	}
	s.mu.Unlock()
	return s.MemoryStore.Set(ctx, vmID, key, val, cas)
}

func TestRateLimitingInModule(t *testing.T) {
	eachModule(t, "rate-limiting", func(t *testing.T, load loader) {
		store := &keyStore{MemoryStore: hostabi.NewMemoryStore()}
		f := mustLoad(t, load, filtertest.Options{Shared: store, Config: `{"minute":3,"limit_by":"ip"}`})
		for i := 1; i <= 4; i++ {
			r := f.Do(filtertest.Request{ClientAddr: "10.1.1.1:5555"})
			if i <= 3 {
				if r.Local != nil {
					t.Fatalf("request %d limited: %+v", i, r.Local)
				}
				if v, _ := r.ResponseHeader("x-ratelimit-remaining-minute"); v != string(rune('0'+3-i)) {
					t.Errorf("request %d: remaining = %q (%q)", i, v, r.ResponseHeaders)
				}
			} else if r.Local == nil || r.Local.Status != 429 || !strings.Contains(string(r.Local.Body), "API rate limit exceeded") {
				t.Errorf("4th request: %+v, want 429", r.Local)
			} else if _, ok := r.LocalHeader("retry-after"); !ok {
				t.Errorf("429 without Retry-After: %q", r.Local.Headers)
			}
		}
		if len(store.keys) != 1 || !strings.Contains(store.keys[0], "/local/rate-limiting/minute/ip:10.1.1.1") {
			t.Errorf("shared-data keys = %q", store.keys)
		}
	})
}

func TestCORSPreflightInModule(t *testing.T) {
	eachModule(t, "cors", func(t *testing.T, load loader) {
		f := mustLoad(t, load, filtertest.Options{Config: `{"origins":["https://app.example.com"],"methods":["GET","POST","PUT","DELETE"]}`})
		r := f.Do(filtertest.Request{Headers: [][2]string{{":method", "OPTIONS"}, {":path", "/api/v2/orders"},
			{"origin", "https://app.example.com"}, {"access-control-request-method", "PUT"}}})
		if r.Local == nil || r.Local.Status != 200 {
			t.Fatalf("preflight not answered: %+v", r.Local)
		}
		if v, _ := r.LocalHeader("access-control-allow-origin"); v != "https://app.example.com" {
			t.Errorf("ACAO = %q", v)
		}
		if v, _ := r.LocalHeader("access-control-allow-methods"); v != "GET,POST,PUT,DELETE" {
			t.Errorf("ACAM = %q", v)
		}
		r = f.Do(filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {"origin", "https://app.example.com"}}})
		if v, _ := r.ResponseHeader("access-control-allow-origin"); v != "https://app.example.com" {
			t.Errorf("response ACAO = %q", v)
		}
	})
}

func TestCanaryInModule(t *testing.T) {
	eachModule(t, "canary", func(t *testing.T, load loader) {
		f := mustLoad(t, load, filtertest.Options{Config: `{"http":[{"match":[{"headers":{"x-canary":{"exact":"true"}}}],"route":[{"subset":"v2","weight":100}]},
		{"route":[{"subset":"v1","weight":90},{"subset":"v2","weight":10}]}]}`})
		r := f.Do(filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {"x-canary", "true"}, {"x-sluice-subset", "evil"}}})
		if v, _ := r.RequestHeader("x-sluice-subset"); v != "v2" {
			t.Errorf("x-sluice-subset = %q, want v2", v)
		}
		if v := string(r.Properties["sluice.subset"]); v != "v2" {
			t.Errorf("property sluice.subset = %q, want v2", v)
		}
		if n := len(values(r.RequestHeaders, "x-sluice-subset")); n != 1 {
			t.Errorf("%d x-sluice-subset headers, want the client's replaced", n)
		}
		counts := map[string]int{}
		for i := 0; i < 400; i++ {
			v, _ := f.Do(filtertest.Request{}).RequestHeader("x-sluice-subset")
			counts[v]++
		}
		if counts["v1"] < 300 || counts["v2"] < 10 || counts["v1"]+counts["v2"] != 400 {
			t.Errorf("400 requests split %v, want about 360/40", counts)
		}
	})
}

// The fault delay runs on the host's ticks, in synctest's bubble: the
// clock moves only when every goroutine waits, so the times below are
// exact.
func TestFaultInModule(t *testing.T) {
	eachModule(t, "fault", func(t *testing.T, load loader) {
		synctest.Test(t, func(t *testing.T) {
			f := mustLoad(t, load, filtertest.Options{Config: `{"delay":{"fixedDelay":"1s"},"abort":{"httpStatus":503,"percentage":{"value":100}},"headers":{"x-fault":{"exact":"on"}}}`})
			start := time.Now()
			r := f.Do(filtertest.Request{})
			if r.Local != nil || r.Paused || r.ResponseHeaders == nil || time.Since(start) != 0 {
				t.Fatalf("unmatched request: reply %+v paused %v after %v, want it through at once", r.Local, r.Paused, time.Since(start))
			}
			// Off the ticks' beat (they started with the configuration), so
			// the delay ends between two of them.
			time.Sleep(20 * time.Millisecond)
			matched := filtertest.Request{Headers: [][2]string{{"x-fault", "on"}}, Wait: 5 * time.Second}
			start = time.Now()
			r = f.Do(matched)
			took := time.Since(start)
			if r.Local == nil || r.Local.Status != 503 {
				t.Fatalf("after the delay: reply %+v (paused %v), want 503 on the delayed stream", r.Local, r.Paused)
			}
			// Not before the delay ended, and at the first tick after: the
			// plugin ticks every 50 ms (the wait notices within 1 ms).
			if took < time.Second || took > time.Second+50*time.Millisecond+time.Millisecond {
				t.Errorf("aborted after %v, want at the first 50 ms tick after the 1s delay", took)
			}
			// Two delayed streams at once: a tick answers each on its own
			// stream (the plugin makes each the effective context).
			a := f.Start(matched)
			time.Sleep(20 * time.Millisecond)
			b := f.Start(matched)
			for _, r := range []*filtertest.Result{a.Wait(), b.Wait()} {
				if r.Local == nil || r.Local.Status != 503 || r.Paused {
					t.Errorf("stream %d of two: reply %+v paused %v", r.ContextID, r.Local, r.Paused)
				}
			}
		})
	})
}

func TestRequestTransformerBodyInModule(t *testing.T) {
	eachModule(t, "request-transformer", func(t *testing.T, load loader) {
		f := mustLoad(t, load, filtertest.Options{Config: `{"add":{"headers":["X-Request-Source:external"],"body":["source:edge"]},"remove":{"body":["password"]}}`})
		r := f.Do(filtertest.Request{
			Headers:    [][2]string{{":method", "POST"}, {":path", "/"}, {"content-type", "application/json"}, {"content-length", "27"}},
			BodyChunks: [][]byte{[]byte(`{"user":"a",`), []byte(`"password":"x"}`)},
		})
		if v, _ := r.RequestHeader("x-request-source"); v != "external" {
			t.Errorf("x-request-source = %q", v)
		}
		if _, ok := r.RequestHeader("content-length"); ok {
			t.Error("content-length kept although the body changes")
		}
		if len(r.RequestBodyActions) != 2 || r.RequestBodyActions[0] != hostabi.Buffer {
			t.Errorf("body actions %v, want the partial body buffered", r.RequestBodyActions)
		}
		if got := string(r.RequestBody); got != `{"source":"edge","user":"a"}` {
			t.Errorf("body = %s", got)
		}
	})
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
			eachModule(t, "response-ratelimiting", func(t *testing.T, load loader) {
				f := mustLoad(t, load, filtertest.Options{Config: c.config})
				for i := 0; i < 3; i++ {
					r := f.Do(filtertest.Request{
						Headers:         [][2]string{{":method", "POST"}, {":path", "/users"}, {"x-consumer-username", "alice"}},
						Properties:      map[string][]byte{"sluice.consumer": []byte("alice")}, // as key-auth or jwt would
						ResponseHeaders: [][2]string{{":status", "200"}, {c.header, "sms=1"}},
					})
					if i == 2 {
						if r.Local == nil || r.Local.Status != 429 {
							t.Fatalf("third request: %+v, want 429", r.Local)
						}
						break
					}
					if _, ok := r.ResponseHeader(c.header); ok {
						t.Error("usage header reached the client")
					}
					if v, _ := r.ResponseHeader("x-ratelimit-remaining-sms-minute"); v != string(rune('1'-i)) {
						t.Errorf("response %d: remaining = %q", i, v)
					}
				}
			})
		})
	}
}

// heldCalls is an IdP whose http_calls wait for the test to answer them.
type heldCalls struct {
	mu    sync.Mutex
	calls []hostabi.HTTPCallRequest
	done  []func(hostabi.HTTPCallResponse, error)
}

func (h *heldCalls) HTTPCall(_ context.Context, req hostabi.HTTPCallRequest, done func(hostabi.HTTPCallResponse, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, req)
	h.done = append(h.done, done)
	return nil
}

// answer answers the i-th call.
func (h *heldCalls) answer(i int, resp hostabi.HTTPCallResponse, err error) {
	h.mu.Lock()
	done := h.done[i]
	h.mu.Unlock()
	done(resp, err)
}

func (h *heldCalls) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

// answerUntil answers each call from the first-th on, as it comes, until
// done (checked every 10 ms of a synctest bubble's clock, for at most
// 10 s). With a cold compile cache the compiled module's instance takes
// over from the interpreter's while a test runs: a fetch that instance
// made is answered to no one, and the new instance fetches in its turn
// (TestJWTFetchesOnceForEveryInstance has the rule).
func (h *heldCalls) answerUntil(t *testing.T, first int, done func() bool, resp hostabi.HTTPCallResponse, err error) {
	t.Helper()
	next := first
	for start := time.Now(); !done(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("not done 10s after answering %d calls", next-first)
		}
		for ; next < h.count(); next++ {
			h.answer(next, resp, err)
		}
	}
}

func TestJWTInModule(t *testing.T) {
	eachModule(t, "jwt", func(t *testing.T, load loader) {
		// The Go reference (never served) fetches for each instance: the
		// compiled module's, replacing the interpreter's with a cold
		// compile cache, may have fetched too.
		goRef := strings.HasSuffix(t.Name(), "/go")
		synctest.Test(t, func(t *testing.T) {
			idp := &heldCalls{}
			f := mustLoad(t, load, filtertest.Options{HTTP: idp,
				Config: `{"jwks_uri":"https://id.example.com/jwks.json","jwks_cluster":"idp","claims_to_verify":["exp"]}`})
			if n := idp.count(); n != 1 && !(goRef && n == 2) || idp.calls[0].Cluster != "idp" {
				t.Fatalf("JWKS fetch calls = %+v", idp.calls)
			}
			if v := values(idp.calls[0].Headers, ":path"); !slices.Equal(v, []string{"/jwks.json"}) {
				t.Errorf("JWKS :path = %q", v)
			}
			// A request with a token waits for the keys; a failed fetch
			// answers 503.
			b64 := base64.RawURLEncoding.EncodeToString
			token := b64([]byte(`{"alg":"RS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"a","exp":1}`)) + "." + b64([]byte("sig"))
			p := f.Start(filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer " + token}}})
			synctest.Wait()
			if p.Done() {
				t.Fatalf("the request did not wait for the JWKS: %+v", p.Wait().Local)
			}
			idp.answerUntil(t, 0, p.Done, hostabi.HTTPCallResponse{}, errors.New("connection refused"))
			if r := p.Wait(); r.Local == nil || r.Local.Status != 503 {
				t.Errorf("after a failed fetch: %+v, want 503", r.Local)
			}
			// No token: 401 at once, with RFC 6750's challenge.
			r := f.Do(filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/"}}})
			if r.Local == nil || r.Local.Status != 401 {
				t.Fatalf("no token: %+v", r.Local)
			}
			if v, _ := r.LocalHeader("www-authenticate"); v != `Bearer realm="sluice"` {
				t.Errorf("WWW-Authenticate = %q", v)
			}
		})
	})
}

// Every instance of the plugin's VM has its own root context (one per
// core; a new one when the pool grows, or when the compiled module
// replaces the interpreter's): the keys one fetches serve them all, one
// fetch per key set and refresh period, as Envoy's workers share what
// its main thread fetched. Two filters on one shared data store stand
// for two instances.
func TestJWTFetchesOnceForEveryInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		secret := []byte("0123456789abcdef0123456789abcdef")
		b64 := base64.RawURLEncoding.EncodeToString
		input := b64([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"alice"}`))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		req := filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer " + input + "." + b64(m.Sum(nil))}}}
		keys := hostabi.HTTPCallResponse{Headers: [][2]string{{":status", "200"}},
			Body: []byte(`{"keys":[{"kty":"oct","kid":"k1","k":"` + b64(secret) + `"}]}`)}
		shared := hostabi.NewMemoryStore()
		load := func(idp *heldCalls) *filtertest.Filter {
			return filtertest.Load(t, plugins.RustModule("jwt"), filtertest.Options{Name: "jwt", RootID: "jwt", HTTP: idp, Shared: shared,
				Config: `{"jwks_uri":"https://id.example.com/jwks.json","jwks_cluster":"idp","jwks_refresh":"1m"}`})
		}
		idp1, idp2 := &heldCalls{}, &heldCalls{}
		start := time.Now()
		f1 := load(idp1)
		f2 := load(idp2)
		if idp1.count() != 1 || idp2.count() != 0 {
			t.Fatalf("JWKS fetches at start: %d and %d, want one in all", idp1.count(), idp2.count())
		}
		// A request on the second waits for the keys the first fetches.
		waiting := f2.Start(req)
		synctest.Wait()
		if waiting.Done() {
			t.Fatalf("the request did not wait for the JWKS: %+v", waiting.Wait().Local)
		}
		idp1.answerUntil(t, 0, waiting.Done, keys, nil)
		if r := waiting.Wait(); r.Local != nil || r.Paused {
			t.Fatalf("valid token refused on the instance that did not fetch: %+v paused %v (logs %v)", r.Local, r.Paused, f2.Logs())
		}
		for _, f := range []*filtertest.Filter{f1, f2} {
			if r := f.Do(req); r.Local != nil {
				t.Errorf("valid token refused: %+v", r.Local)
			}
		}
		if n := idp1.count() + idp2.count(); n != 1 {
			t.Errorf("%d JWKS fetches before the refresh, want 1", n)
		}
		// Past the refresh period, one of them fetches again, and both
		// serve what it fetched.
		for time.Since(start) < 59*time.Second {
			time.Sleep(time.Second)
			if n := idp1.count() + idp2.count(); n != 1 {
				t.Fatalf("%d JWKS fetches %v after the first, before the refresh period", n, time.Since(start))
			}
		}
		for idp1.count()+idp2.count() < 2 {
			if time.Since(start) > 70*time.Second {
				t.Fatal("no JWKS fetch 70s after the first (refresh 1m)")
			}
			time.Sleep(time.Second)
		}
		for i := 1; i < idp1.count(); i++ {
			idp1.answer(i, keys, nil)
		}
		for i := 0; i < idp2.count(); i++ {
			idp2.answer(i, keys, nil)
		}
		time.Sleep(20 * time.Second)
		for _, f := range []*filtertest.Filter{f1, f2} {
			if r := f.Do(req); r.Local != nil {
				t.Errorf("after the refresh: %+v", r.Local)
			}
		}
		if n := idp1.count() + idp2.count(); n != 2 {
			t.Errorf("%d JWKS fetches in the first %v, want 2", n, time.Since(start))
		}
	})
}

// A fetch that fails is answered (503) to the requests waiting on every
// instance, not only the one that fetched; the next fetch comes a second
// later, from one of them.
func TestJWTFailedFetchAnsweredOnEveryInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := hostabi.NewMemoryStore()
		load := func(idp *heldCalls) *filtertest.Filter {
			return filtertest.Load(t, plugins.RustModule("jwt"), filtertest.Options{Name: "jwt", RootID: "jwt", HTTP: idp, Shared: shared,
				Config: `{"jwks_uri":"https://id.example.com/jwks.json","jwks_cluster":"idp"}`})
		}
		idp1, idp2 := &heldCalls{}, &heldCalls{}
		load(idp1)
		f2 := load(idp2)
		b64 := base64.RawURLEncoding.EncodeToString
		token := b64([]byte(`{"alg":"RS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"a"}`)) + "." + b64([]byte("sig"))
		p := f2.Start(filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer " + token}}})
		synctest.Wait()
		idp1.answerUntil(t, 0, p.Done, hostabi.HTTPCallResponse{}, errors.New("connection refused"))
		if r := p.Wait(); r.Local == nil || r.Local.Status != 503 {
			t.Fatalf("on the other instance after a failed fetch: %+v, want 503", r.Local)
		}
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if n := idp1.count() + idp2.count(); n != 2 {
			t.Errorf("%d JWKS fetches 1.5 s after a failed one, want 2", n)
		}
	})
}

func TestJWTWithFetchedJWKSInModule(t *testing.T) {
	eachModule(t, "jwt", func(t *testing.T, load loader) {
		synctest.Test(t, func(t *testing.T) {
			idp := &heldCalls{}
			f := mustLoad(t, load, filtertest.Options{HTTP: idp, Config: `{"jwks_uri":"https://id.example.com/jwks.json","jwks_cluster":"idp"}`})
			secret := []byte("0123456789abcdef0123456789abcdef")
			b64 := base64.RawURLEncoding.EncodeToString
			input := b64([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"alice"}`))
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(input))
			token := input + "." + b64(m.Sum(nil))
			req := filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer " + token}}}

			// Two requests wait for the keys.
			waiting := []*filtertest.Pending{f.Start(req), f.Start(req)}
			synctest.Wait()
			for _, p := range waiting {
				if p.Done() {
					t.Fatalf("a request did not wait for the JWKS: %+v", p.Wait().Local)
				}
			}
			// The IdP answers; each waiting request is checked and resumed,
			// on its own stream.
			idp.answerUntil(t, 0, func() bool { return waiting[0].Done() && waiting[1].Done() }, hostabi.HTTPCallResponse{Headers: [][2]string{{":status", "200"}},
				Body: []byte(`{"keys":[{"kty":"oct","kid":"k1","k":"` + b64(secret) + `"}]}`)}, nil)
			for _, p := range waiting {
				r := p.Wait()
				if r.Local != nil || r.Paused {
					t.Fatalf("valid token refused after the JWKS arrived: %+v paused %v (logs %v)", r.Local, r.Paused, f.Logs())
				}
				if !slices.Equal(r.Resumed, []hostabi.StreamType{hostabi.StreamRequest}) {
					t.Errorf("stream %d resumed %v, want its request once", r.ContextID, r.Resumed)
				}
				if v, _ := r.RequestHeader("x-consumer-username"); v != "alice" {
					t.Errorf("consumer = %q, want alice", v)
				}
			}
			// Later requests are checked at once.
			r := f.Do(filtertest.Request{Headers: [][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer " + token + "x"}}})
			if r.Local == nil || r.Local.Status != 401 || r.Resumed != nil {
				t.Errorf("bad signature: reply %+v resumed %v, want 401", r.Local, r.Resumed)
			}
		})
	})
}
