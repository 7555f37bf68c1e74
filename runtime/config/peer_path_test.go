package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSidecarPeerAuthentication: a sidecar claims mTLS only with an
// [identity]; "disable" is plain text on purpose, even with one.
func TestSidecarPeerAuthentication(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"id.crt", "id.key", "ca.crt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	identity := "[identity]\ncert = \"id.crt\"\nkey = \"id.key\"\ntrust_bundle = \"ca.crt\"\n"
	tests := []struct {
		name, peerAuth string
		identity       bool
		wantErr        string // "" for a valid config
		wantTLS        bool   // the inbound listener terminates TLS
	}{
		{name: "default without identity", wantErr: `s.toml:2: sidecar.peer_authentication: "strict" (the default) needs an [identity]`},
		{name: "strict without identity", peerAuth: "strict", wantErr: `s.toml:4: sidecar.peer_authentication: "strict" (set here) needs an [identity]`},
		{name: "permissive without identity", peerAuth: "permissive", wantErr: `"permissive" (set here) needs an [identity]`},
		{name: "unknown", peerAuth: "off", wantErr: `unknown value "off"; want "strict", "permissive" or "disable"`},
		{name: "disable without identity", peerAuth: "disable"},
		{name: "default with identity", identity: true, wantTLS: true},
		{name: "permissive with identity", peerAuth: "permissive", identity: true, wantTLS: true},
		{name: "disable with identity", peerAuth: "disable", identity: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "mode = \"sidecar\"\n[sidecar]\napp = \"127.0.0.1:8080\"\n"
			if tt.peerAuth != "" {
				src += "peer_authentication = \"" + tt.peerAuth + "\"\n"
			}
			if tt.identity {
				src += identity
			}
			c, err := Parse(filepath.Join(dir, "s.toml"), []byte(src))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range c.Listeners {
				if l.Direction == "inbound" && (l.TLS != nil) != tt.wantTLS {
					t.Errorf("inbound TLS %+v, want TLS %v", l.TLS, tt.wantTLS)
				}
			}
		})
	}
	// Edge mode does not care about [sidecar].
	if _, err := Parse(filepath.Join(dir, "s.toml"), []byte("[sidecar]\napp = \"127.0.0.1:8080\"\n")); err != nil {
		t.Errorf("edge file with [sidecar]: %v", err)
	}
}

// TestPathKeys: listeners inherit [server]'s path keys unless they set
// their own, and the keys apply hot (a reload does not ask for a restart).
func TestPathKeys(t *testing.T) {
	src := `
[server]
path_normalization = "BASE"
[[listeners]]
name = "a"
address = "127.0.0.1:8080"
path_parameters = "REJECT"
[[listeners]]
name = "b"
address = "127.0.0.1:8081"
`
	c, err := Parse("s.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := func(l Listener) string {
		return l.PathNormalization + " " + l.PathWithEscapedSlashes + " " + l.PathParameters
	}
	if a, b := got(c.Listeners[0]), got(c.Listeners[1]); a != "BASE KEEP_UNCHANGED REJECT" || b != "BASE KEEP_UNCHANGED STRIP" {
		t.Errorf("listeners' path keys %q, %q", a, b)
	}
	d, err := Parse("s.toml", []byte(strings.Replace(strings.Replace(src, `"BASE"`, `"NONE"`, 1), `"REJECT"`, `"KEEP"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if r := RestartNeeded(c, d); len(r) != 0 {
		t.Errorf("RestartNeeded = %v, want none: path keys apply hot", r)
	}
	e, err := Parse("s.toml", []byte(strings.Replace(src, `"BASE"`, `"base"`, 1)))
	if err == nil || !strings.Contains(err.Error(), `s.toml:3: server.path_normalization: unknown value "base"; want one of NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES`) {
		t.Errorf("lower-case value: %v %v", e, err)
	}
}
