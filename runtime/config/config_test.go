package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEditDistanceAndSuggest(t *testing.T) {
	fields := tomlFields(reflect.TypeFor[Route]())
	tests := []struct {
		key, want string
	}{
		{"timout", "timeout"},
		{"Timeout", "timeout"},
		{"backend", "backends"},
		{"strip_prefx", "strip_prefix"},
		{"prefixrewrite", "prefix_rewrite"},
		{"zzzzzzzz", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.key, fields); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"", "abc", 3}, {"kitten", "sitting", 3}, {"same", "same", 0}, {"ab", "ba", 2}} {
		if got := editDistance(tt.a, tt.b); got != tt.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.d)
		}
	}
}

func TestSourceIndexLine(t *testing.T) {
	src := newSourceIndex([]byte(`mode = "edge" # 1
[admin]
address = "x"
desc = """
[[routes]]
name = "inside a string"
"""

[[routes]]
name = "a"
match = { path = "/", headers = [ { name = "x", exact = "1" },
  { name = "y", regex = "z" } ] }

[[routes]]
name = "b"
backends = [
  { cluster = "c1" },
  { cluster = "c2", weight = 3 },
]
[routes.retry]
attempts = 1
[[routes]]
[[routes.backends]]
cluster = "deep"
`))
	tests := []struct {
		path string
		want int
	}{
		{"mode", 1},
		{"admin", 2},
		{"admin.address", 3},
		{"routes[0]", 9},
		{"routes[0].name", 10},
		{"routes[0].match.path", 11},
		{"routes[0].match.headers[1].regex", 12},
		{"routes[0].match.headers[1].name", 12},
		{"routes[1].name", 15},
		{"routes[1].backends[1].weight", 18},
		{"routes[1].backends[0].cluster", 17},
		{"routes[1].retry.attempts", 21},
		{"routes[1].retry.on", 20}, // missing key: its table's line
		{"routes[2].backends[0].cluster", 24},
		{"routes[2].backends[0]", 23},
		{"sidecar.app", 0},
	}
	for _, tt := range tests {
		if got := src.Line(tt.path); got != tt.want {
			t.Errorf("Line(%q) = %d, want %d", tt.path, got, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Problems: []Problem{
		{File: "s.toml", Line: 12, Key: "routes[0].timout", Msg: `unknown key; did you mean "timeout"?`},
		{File: "s.toml", Key: "sidecar.app", Msg: "required"},
		{File: "s.toml", Line: 3, Msg: "bad"},
	}}
	want := "s.toml:12: routes[0].timout: unknown key; did you mean \"timeout\"?\ns.toml: sidecar.app: required\ns.toml:3: bad"
	if got := e.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	sortProblems(e.Problems)
	if e.Problems[0].Line != 3 || e.Problems[2].Line != 0 {
		t.Errorf("sorted order %+v: want by line, unplaced last", e.Problems)
	}
}

func TestApplyModeIsRepeatable(t *testing.T) {
	c, err := Parse("s.toml", []byte(`
[sidecar]
app = "127.0.0.1:8081"
peer_authentication = "disable"
[[services]]
name = "payments"
endpoints = ["127.0.0.1:9001"]
`))
	if err != nil {
		t.Fatal(err)
	}
	count := func() (l, r, cl int) { return len(c.Listeners), len(c.Routes), len(c.Clusters) }
	if l, r, cl := count(); l != 1 || r != 0 || cl != 0 || c.Listeners[0].Name != EdgeListenerName {
		t.Fatalf("edge: %d listeners %d routes %d clusters", l, r, cl)
	}
	for range 2 {
		if err := c.ApplyMode("sidecar"); err != nil {
			t.Fatal(err)
		}
		if l, r, cl := count(); l != 2 || r != 2 || cl != 2 {
			t.Fatalf("sidecar: %d listeners %d routes %d clusters, want 2 2 2", l, r, cl)
		}
		// Generated items get defaults even when ApplyMode runs after Load;
		// a service's cluster balances by least requests, as Istio's.
		if c.Listeners[0].IdleTimeout.D() != DefaultIdleTimeout || c.Routes[1].Retry == nil || c.Clusters[1].LB != "least_request" || c.Clusters[0].Protocol != "http1" {
			t.Errorf("generated items lack defaults: %+v %+v %+v", c.Listeners[0], c.Routes[1], c.Clusters[1])
		}
	}
	if err := c.ApplyMode("edge"); err != nil {
		t.Fatal(err)
	}
	// An invalid result is reported, as Load would.
	c.Sidecar.App = "nohostport"
	if err := c.ApplyMode("sidecar"); err == nil || !strings.Contains(err.Error(), "sidecar.app") {
		t.Errorf("ApplyMode with a bad sidecar.app = %v", err)
	}
	if err := c.ApplyMode("edge"); err != nil {
		t.Fatal(err)
	}
	if l, r, cl := count(); l != 1 || r != 0 || cl != 0 {
		t.Fatalf("back to edge: %d listeners %d routes %d clusters", l, r, cl)
	}
	var ce *Error
	if err := c.ApplyMode("mesh"); !errors.As(err, &ce) || !strings.Contains(err.Error(), `unknown mode "mesh"`) {
		t.Errorf("ApplyMode(mesh) = %v", err)
	}
}

func TestLoadWithModeOverridesFile(t *testing.T) {
	data := []byte(`
mode = "sidecar"
[sidecar]
app = "127.0.0.1:8081"
peer_authentication = "disable"
`)
	for _, tt := range []struct{ mode, want string }{{"", "sidecar"}, {"edge", "edge"}, {"sidecar", "sidecar"}} {
		c, err := ParseWithMode("s.toml", data, tt.mode)
		if err != nil {
			t.Fatalf("mode %q: %v", tt.mode, err)
		}
		if c.Mode != tt.want {
			t.Errorf("mode %q: got %q, want %q", tt.mode, c.Mode, tt.want)
		}
	}
	if _, err := Load("testdata/does-not-exist.toml"); err == nil || !strings.Contains(err.Error(), "does-not-exist.toml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// TestValidateBuiltInCode covers a Config made without a file: problems
// carry no line, and Validate still finds them all.
func TestValidateBuiltInCode(t *testing.T) {
	c := &Config{
		Mode:        "edge",
		Admin:       Admin{Disabled: true},
		Clusters:    []Cluster{{Name: "c", Endpoints: []string{"127.0.0.1:1"}, Protocol: "http1", LB: "round_robin"}},
		Routes:      []Route{{Name: "r", Backends: []Backend{{Cluster: "nope", Weight: 1}}}},
		Listeners:   []Listener{{Name: "l", Address: "127.0.0.1:0", Protocols: []string{"h3"}}},
		SharedStore: SharedStore{Kind: "memory"},
	}
	err := c.Validate()
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("Validate = %v, want 2 problems", err)
	}
	for _, p := range ce.Problems {
		if p.Line != 0 {
			t.Errorf("problem %v has a line without a file", p)
		}
	}
}

func TestUnits(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Size
		bad  bool
	}{{"64MiB", 64 << 20, false}, {"512KiB", 512 << 10, false}, {"1GB", 1e9, false}, {"100", 100, false}, {"-1", 0, true}, {"lots", 0, true}} {
		var s Size
		err := s.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.bad || s != tt.want {
			t.Errorf("Size(%q) = %d, %v", tt.in, s, err)
		}
	}
	for _, tt := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{{"250ms", 250 * time.Millisecond, false}, {"0s", 0, false}, {"-1s", 0, true}, {"10", 0, true}} {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.bad || d.D() != tt.want {
			t.Errorf("Duration(%q) = %v, %v", tt.in, d.D(), err)
		}
	}
}

func TestJSONRedactsWithoutMutating(t *testing.T) {
	c, err := Parse("s.toml", []byte(`
[shared_store]
kind = "redis"
redis = { address = "127.0.0.1:6379", password = "hunter2" }
[[plugins]]
name = "p"
wasm = "builtin:jwt"
config = { issuer = "https://id", nested = { PASSWORD = "pw" }, list = [ { token = "t" } ] }
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", `"pw"`, `"t"`} {
		if strings.Contains(string(b), secret) {
			t.Errorf("JSON leaks %s:\n%s", secret, b)
		}
	}
	if !strings.Contains(string(b), "https://id") {
		t.Errorf("JSON lost a plain value:\n%s", b)
	}
	if got := c.Plugins[0].Config["nested"].(map[string]any)["PASSWORD"]; got != "pw" {
		t.Errorf("JSON changed the running config: %v", got)
	}
	if c.SharedStore.Redis.Password != "hunter2" {
		t.Error("JSON changed the running config's Redis password")
	}
}

// TestExamplesLoad keeps the shipped examples valid: `sluice validate` on
// any of them must pass.
func TestExamplesLoad(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no examples yet")
	}
	for _, p := range paths {
		if _, err := Load(p); err != nil {
			t.Errorf("%s:\n%v", p, err)
		}
	}
}

func TestRestartNeeded(t *testing.T) {
	base := `
[[listeners]]
name = "public"
address = "127.0.0.1:8080"
routes = ["a"]
[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9000"]
[[routes]]
name = "a"
backends = [ { cluster = "c" } ]
`
	tests := []struct {
		name  string
		extra string
		from  string // replaced in base
		to    string
		want  string
	}{
		{name: "same", want: ""},
		{name: "routes and clusters are hot", from: `"127.0.0.1:9000"`, to: `"127.0.0.1:9001"`, want: ""},
		{name: "listener route list is hot", from: `routes = ["a"]`, to: `routes = []`, want: ""},
		{name: "listener address", from: `"127.0.0.1:8080"`, to: `"127.0.0.1:8081"`, want: "listeners[public]"},
		{name: "listener renamed", from: `name = "public"`, to: `name = "edge"`, want: "listeners[edge] (added),listeners[public] (removed)"},
		{name: "admin and server", extra: "[admin]\naddress = \"127.0.0.1:9902\"\n[server]\ndrain_timeout = \"1s\"\n", want: "admin,server"},
		{name: "mode", extra: "mode = \"sidecar\"\n[sidecar]\napp = \"127.0.0.1:1\"\npeer_authentication = \"disable\"\n", want: "mode,sidecar,listeners[inbound] (added),listeners[outbound] (added)"},
	}
	old, err := Parse("s.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := base
			if tt.from != "" {
				src = strings.Replace(src, tt.from, tt.to, 1)
			}
			cur, err := Parse("s.toml", []byte(tt.extra+src))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(RestartNeeded(old, cur), ","); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRestartNeededAppProtocol: switching the app to gRPC rebuilds only
// the app cluster, which reloads hot; the inbound address does not.
func TestRestartNeededAppProtocol(t *testing.T) {
	parse := func(sidecar string) *Config {
		t.Helper()
		c, err := Parse("s.toml", []byte("mode = \"sidecar\"\n[sidecar]\napp = \"127.0.0.1:8081\"\npeer_authentication = \"disable\"\n"+sidecar))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := parse("")
	if got := RestartNeeded(old, parse(`app_protocol = "grpc"`)); len(got) != 0 {
		t.Errorf("app_protocol: %v, want hot", got)
	}
	if got := strings.Join(RestartNeeded(old, parse(`inbound = "127.0.0.1:15007"`)), ","); got != "sidecar,listeners[inbound]" {
		t.Errorf("inbound address: %q", got)
	}
}

// TestPluginSourceKeys: URLs, sha256 and pull_policy are checked with the
// file, line and key; remote sources are not touched by validation.
func TestPluginSourceKeys(t *testing.T) {
	h := strings.Repeat("a", 64)
	dir := t.TempDir()
	wasm := filepath.Join(dir, "f.wasm")
	os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	for _, tc := range []struct{ plugin, want string }{
		{`wasm = "oci://127.0.0.1:5000/f:v1"`, ""},
		{`wasm = "oci://127.0.0.1:5000/f@sha256:` + h + `"` + "\npull_policy = \"Always\"", ""},
		{`wasm = "https://127.0.0.1:8443/f.wasm"` + "\nsha256 = \"" + h + `"`, ""},
		{`wasm = "file://` + wasm + `"`, ""},
		{`wasm = "` + wasm + `"` + "\nsha256 = \"" + h + `"`, ""},
		{`wasm = "https://127.0.0.1:8443/f.wasm"`, "a.toml:3: plugins[0].wasm: \"https://127.0.0.1:8443/f.wasm\": an https source needs sha256"},
		{`wasm = "oci://127.0.0.1:5000/f:v1"` + "\npull_policy = \"Never\"", "a.toml:4: plugins[0].pull_policy: unknown pull_policy \"Never\""},
		{`wasm = "oci://127.0.0.1:5000/f:v1"` + "\nsha256 = \"xyz\"", "a.toml:4: plugins[0].sha256: sha256 \"xyz\": want 64 hex digits"},
		{`wasm = "file://` + dir + `/missing.wasm"`, "a.toml:3: plugins[0].wasm: cannot read " + dir + "/missing.wasm: no such file or directory"},
		{`wasm = "http://127.0.0.1/f.wasm"`, "plain http is not a plugin source"},
	} {
		text := "[[plugins]]\nname = \"p\"\n" + tc.plugin + "\n[wasm]\ninsecure_registries = [\"127.0.0.1:5000\"]\n"
		c, err := Parse(filepath.Join(dir, "a.toml"), []byte(text))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.plugin, err)
			} else if strings.Contains(tc.plugin, "://") && c.Plugins[0].Wasm != strings.Split(strings.Split(tc.plugin, `"`)[1], `"`)[0] {
				t.Errorf("%s: the URL was rewritten to %q", tc.plugin, c.Plugins[0].Wasm)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.plugin, err, tc.want)
		}
	}
	_, err := Parse(filepath.Join(dir, "b.toml"), []byte("[wasm]\ninsecure_registries = [\"http://127.0.0.1:5000\"]\n"))
	if err == nil || !strings.Contains(err.Error(), "wasm.insecure_registries[0]") {
		t.Errorf("insecure_registries with a scheme: %v", err)
	}
}
