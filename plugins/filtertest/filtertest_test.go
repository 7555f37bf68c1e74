package filtertest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap/zapcore"

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

// failingStore is a shared store that is down.
type failingStore struct{}

func (failingStore) Get(context.Context, string, string) ([]byte, uint32, error) {
	return nil, 0, errors.New("store down")
}

func (failingStore) Set(context.Context, string, string, []byte, uint32) error {
	return errors.New("store down")
}

// Logs has what the guest logged, each line with the context that was
// effective: the root context's while it configured, the stream's in the
// stream's callbacks.
func TestLogs(t *testing.T) {
	f := Load(t, plugins.RustModule("rate-limiting"), Options{Name: "rl", RootID: "rate-limiting", Shared: failingStore{},
		Config: map[string]any{"minute": 5, "limit_by": "ip"}})
	logs := f.Logs()
	if len(logs) != 1 || logs[0].Level != zapcore.InfoLevel || !strings.Contains(logs[0].Message, "policy local") || logs[0].ContextID == 0 {
		t.Fatalf("logs after configure = %+v, want the policy line of the root context", logs)
	}
	root := logs[0].ContextID
	r := f.Do(Request{})
	if r.Local != nil {
		t.Fatalf("fault-tolerant limiter refused with its store down: %+v", r.Local)
	}
	logs = f.Logs()[1:]
	if len(logs) == 0 {
		t.Fatal("nothing logged about the store")
	}
	for _, l := range logs {
		if l.Level != zapcore.WarnLevel || !strings.Contains(l.Message, "shared store failed") || l.ContextID != r.ContextID || l.ContextID == root {
			t.Errorf("log %+v, want the store's failure on stream %d", l, r.ContextID)
		}
	}
}

// Start runs streams at once; each paused one is resumed by the tick on
// its own stream (the plugin makes it the effective context), which
// Result.Resumed shows. Ticks run on synctest's clock.
func TestStartAndResumed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := LoadBuiltin(t, "fault", map[string]any{"delay": map[string]any{"fixedDelay": "100ms"}})
		start := time.Now()
		a := f.Start(Request{})
		time.Sleep(10 * time.Millisecond)
		b := f.Start(Request{})
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if a.Done() || b.Done() {
			t.Fatal("a stream ended before its delay")
		}
		ra, rb := a.Wait(), b.Wait()
		if d := time.Since(start); d < 110*time.Millisecond {
			t.Errorf("both done after %v, before the second delay ended", d)
		}
		if ra.ContextID == rb.ContextID {
			t.Fatalf("two streams with one context id %d", ra.ContextID)
		}
		for _, r := range []*Result{ra, rb} {
			if r.Paused || r.Local != nil || !slices.Equal(r.Resumed, []hostabi.StreamType{hostabi.StreamRequest}) {
				t.Errorf("stream %d: paused %v reply %+v resumed %v, want its request resumed once", r.ContextID, r.Paused, r.Local, r.Resumed)
			}
		}
	})
}

// Body chunks go one by one; a chunk the filter buffers comes again with
// the next, as the proxy's chain gives it, and a filter that does not
// buffer sees each chunk alone.
func TestBodyChunks(t *testing.T) {
	chunks := [][]byte{[]byte(`{"a":`), []byte(`1}`)}
	req := Request{Headers: [][2]string{{":method", "POST"}, {"content-type", "application/json"}}, BodyChunks: chunks}
	f := LoadBuiltin(t, "request-transformer", map[string]any{"add": map[string]any{"body": []string{"source:edge"}}})
	r := f.Do(req)
	if !slices.Equal(r.RequestBodyActions, []hostabi.Action{hostabi.Buffer, hostabi.Continue}) || string(r.RequestBody) != `{"a":1,"source":"edge"}` {
		t.Errorf("buffering filter: actions %v body %s", r.RequestBodyActions, r.RequestBody)
	}
	f = LoadBuiltin(t, "response-transformer", map[string]any{"add": map[string]any{"headers": []string{"x-a:1"}}})
	r = f.Do(req)
	if !slices.Equal(r.RequestBodyActions, []hostabi.Action{hostabi.Continue, hostabi.Continue}) || string(r.RequestBody) != `{"a":1}` {
		t.Errorf("passing filter: actions %v body %s", r.RequestBodyActions, r.RequestBody)
	}
}
