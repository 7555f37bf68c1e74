package filtertest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/plugins"
)

func TestHeadersInHeadersOut(t *testing.T) {
	f := LoadBuiltin(t, "add-header", map[string]any{"request_headers": map[string]string{"x-a": "1"},
		"response_headers": map[string]string{"x-b": "2"}})
	r := f.Do(Request{Headers: [][2]string{{":path", "/x"}}})
	if v, _ := r.RequestHeader("x-a"); v != "1" {
		t.Errorf("x-a = %q", v)
	}
	if v, _ := r.ResponseHeader("x-b"); v != "2" {
		t.Errorf("x-b = %q", v)
	}
	if r.Local != nil || r.Paused {
		t.Errorf("result = %+v", r)
	}
}

func TestLocalReplyAndMetrics(t *testing.T) {
	f := LoadBuiltin(t, "rate-limiting", map[string]any{"second": 1, "limit_by": "ip"})
	if r := f.Do(Request{}); r.Local != nil {
		t.Fatalf("first request refused: %+v", r.Local)
	}
	r := f.Do(Request{})
	if r.Local == nil || r.Local.Status != 429 || !strings.Contains(string(r.Local.Body), "API rate limit exceeded") {
		t.Fatalf("second request: %+v", r.Local)
	}
	if v, _ := r.LocalHeader("retry-after"); v == "" {
		t.Error("no Retry-After")
	}
	if r.ResponseHeaders != nil {
		t.Error("response headers for a locally answered request")
	}
	if n, ok := f.Metric(`sluice_rate_limiting_rejected_total{plugin="rate-limiting"}`); !ok || n != 1 {
		t.Errorf("rejected metric = %d, %v", n, ok)
	}
}

func TestPauseResumedByTick(t *testing.T) {
	f := LoadBuiltin(t, "fault", map[string]any{"delay": map[string]any{"fixedDelay": "30ms"}})
	start := time.Now()
	r := f.Do(Request{})
	if r.Paused || r.Local != nil {
		t.Fatalf("result = %+v", r)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("took %v, less than the delay", d)
	}
	if _, ok := r.ResponseHeader(":status"); !ok {
		t.Error("the response did not go through after the delay")
	}
}

// idp answers the JWKS http_call the jwt plugin makes.
type idp struct{ secret []byte }

func (p idp) HTTPCall(_ context.Context, req hostabi.HTTPCallRequest, done func(hostabi.HTTPCallResponse, error)) error {
	k := base64.RawURLEncoding.EncodeToString(p.secret)
	go done(hostabi.HTTPCallResponse{Headers: [][2]string{{":status", "200"}},
		Body: []byte(`{"keys":[{"kty":"oct","kid":"k1","k":"` + k + `"}]}`)}, nil)
	return nil
}

func TestHTTPCallOnRealHost(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	f := Load(t, plugins.RustModule("jwt"), Options{Name: "auth", RootID: "jwt", HTTP: idp{secret},
		Config: `{"jwks_uri":"https://id.example.com/jwks.json","jwks_cluster":"idp"}`})
	b64 := base64.RawURLEncoding.EncodeToString
	in := b64([]byte(`{"alg":"HS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"alice"}`))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	token := in + "." + b64(m.Sum(nil))
	r := f.Do(Request{Headers: [][2]string{{"authorization", "Bearer " + token}}})
	if r.Local != nil || r.Paused {
		t.Fatalf("valid token: local %+v paused %v", r.Local, r.Paused)
	}
	if v, _ := r.RequestHeader("x-consumer-username"); v != "alice" {
		t.Errorf("consumer = %q", v)
	}
	if v := string(r.Properties["sluice.consumer"]); v != "alice" {
		t.Errorf("sluice.consumer = %q", v)
	}
	r = f.Do(Request{Headers: [][2]string{{"authorization", "Bearer " + token + "x"}}})
	if r.Local == nil || r.Local.Status != 401 {
		t.Errorf("bad signature: %+v", r.Local)
	}
}

func TestBodies(t *testing.T) {
	f := LoadBuiltin(t, "request-transformer", map[string]any{"add": map[string]any{"body": []string{"source:edge"}}})
	r := f.Do(Request{Headers: [][2]string{{":method", "POST"}, {"content-type", "application/json"}}, Body: []byte(`{"a":1}`)})
	if string(r.RequestBody) != `{"a":1,"source":"edge"}` {
		t.Errorf("body = %s", r.RequestBody)
	}
}

func TestLoadErrRefusesBadConfig(t *testing.T) {
	_, err := LoadErr(t, plugins.RustModule("cors"), Options{RootID: "cors", Config: map[string]any{"origin": "x"}})
	if err == nil {
		t.Fatal("a misspelt key was accepted")
	}
}

func TestNetworkFilter(t *testing.T) {
	f := LoadBuiltin(t, "ip-restriction", map[string]any{"deny": []string{"192.0.2.0/24"}})
	ok := f.Dial(Connection{ClientAddr: "198.51.100.1:4000", Downstream: []byte("hello"), Upstream: []byte("hi")})
	if ok.NewConnection != hostabi.Continue || ok.ClosedDownstream || string(ok.Downstream) != "hello" || string(ok.Upstream) != "hi" {
		t.Errorf("allowed client: %+v", ok)
	}
	denied := f.Dial(Connection{ClientAddr: "192.0.2.7:4000", Downstream: []byte("hello")})
	if denied.NewConnection != hostabi.Pause || !denied.ClosedDownstream || denied.Downstream != nil {
		t.Errorf("denied client: %+v", denied)
	}
}
