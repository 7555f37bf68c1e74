package config

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretsConfig is plugins/testdata/secrets.toml (every secret a built-in
// takes, each marked "s3cr3t") plus a user plugin, raw configs and
// metadata with secrets of their own.
func secretsConfig(t *testing.T) (string, string) {
	t.Helper()
	b, err := os.ReadFile("../../plugins/testdata/secrets.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "user.wasm"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	raw := `{"issuer":"x","hmac":"s3cr3t-config-raw"}`
	text := string(b) + `
[[plugins]]
name = "user"
wasm = "user.wasm"
config = { endpoint = "https://api.example.com", password = "s3cr3t-user-password", nested = { API_KEY = "s3cr3t-user-api-key", list = [ { auth_token = "s3cr3t-user-token" } ] }, signing = { kty = "oct", k = "s3cr3t-user-jwk-k" } }
vm_config = { client_secret = "s3cr3t-user-vm" }

[[plugins]]
name = "user-raw"
wasm = "user.wasm"
config_raw = '` + raw + `'
vm_config_raw = "s3cr3t-vm-config-raw"

[[routes]]
name = "r"
plugins = ["auth-keys", "auth-jwt", "upstream-credential", "limits", "sms", "to-legacy", "user", "user-raw"]
backends = [ { cluster = "c" } ]
metadata = { team = "orders", token = "s3cr3t-route-metadata" }

[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9000"]
metadata = { owner = "ops", db_password = "s3cr3t-cluster-metadata" }

[shared_store]
kind = "redis"
redis = { address = "127.0.0.1:6379", password = "s3cr3t-shared-store" }
`
	path := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, raw
}

// /config's JSON holds none of the secrets, and still shows what is not
// secret around them: consumers, public keys, header names, paths.
func TestJSONRedactsSecrets(t *testing.T) {
	path, raw := secretsConfig(t)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if n := strings.Count(out, "s3cr3t"); n != 0 {
		i := strings.Index(out, "s3cr3t")
		t.Errorf("%d secrets in /config, the first at %q", n, out[max(i-80, 0):i+30])
	}
	for _, want := range []string{
		`"consumer": "app"`,               // key-auth's consumer
		`"key": "[redacted]"`,             // and its key
		`"consumer": "web"`,               // jwt's credential
		`"key": "https://id.example.com"`, // its claim value, not a secret
		`"e": "AQAB"`,                     // a JWKS public member
		`"x": "8BcHjUzOgO9Crf6De48UFgc6dT2NL-Q7620juvnPm_A"`,
		`"d": "[redacted]"`,
		`"oth": "[redacted]"`,
		`"authorization": "[redacted]"`, // add-header request
		`"x-served-by": "sluice"`,       // and response headers
		`"authorization:[redacted]"`,    // request-transformer
		`"x-old:x-new"`,                 // a rename is not a secret
		`"host": "redis.internal"`,
		`"endpoint": "https://api.example.com"`, // a user plugin's plain key
		`"team": "orders"`,
		`"owner": "ops"`,
		fmt.Sprintf(`"config_raw": "[redacted] %d bytes, sha256:%x"`, len(raw), sha256.Sum256([]byte(raw))),
		fmt.Sprintf(`"vm_config_raw": "[redacted] 20 bytes, sha256:%x"`, sha256.Sum256([]byte("s3cr3t-vm-config-raw"))),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/config lacks %s", want)
		}
	}
	var parsed map[string]any
	if err := json.Unmarshal(b, &parsed); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	// The running config is untouched.
	again, _ := json.Marshal(c.Plugins)
	if !strings.Contains(string(again), "s3cr3t-key-auth-1") || !strings.Contains(string(again), "s3cr3t-rt-add-header") ||
		c.Plugins[1].Config["jwks"].(map[string]any)["keys"] == nil || !strings.Contains(string(again), "s3cr3t-rsa-d") {
		t.Error("redacting changed the running config")
	}
	if !strings.Contains(fmt.Sprint(c.Routes[0].Metadata), "s3cr3t") {
		t.Error("redacting changed the running route metadata")
	}
}

// A built-in's config of the wrong shape (which the plugin refuses, but
// `sluice validate` and a dump may still see) hides whatever sits where a
// declared secret would be.
func TestJSONRedactsMisshapenSecrets(t *testing.T) {
	c, err := Parse("s.toml", []byte(`
[[plugins]]
name = "a"
wasm = "builtin:key-auth"
config = { keys = ["s3cr3t-1", { key = "s3cr3t-2" }, { key = { nested = "s3cr3t-3" } }] }
[[plugins]]
name = "b"
wasm = "builtin:add-header"
config = { request_headers = "s3cr3t-4" }
[[plugins]]
name = "c"
wasm = "builtin:rate-limiting"
config = { redis = "redis://:s3cr3t-5@host", redis_password = 5 }
[[plugins]]
name = "d"
wasm = "builtin:jwt"
config = { jwks = "{\"keys\":[{\"kty\":\"oct\",\"k\":\"s3cr3t-6\"}]}", credentials = { secret = "s3cr3t-7" } }
[[plugins]]
name = "e"
wasm = "builtin:request-transformer"
config = { add = { headers = ["no colon s3cr3t-8", 9] }, append = "s3cr3t-9" }
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cr3t") {
		t.Errorf("a secret shows:\n%s", b)
	}
}
