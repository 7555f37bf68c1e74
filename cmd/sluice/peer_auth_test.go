package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sidecarNoIdentity is a sidecar file without [identity]; peerAuth "" leaves
// peer_authentication unset (the default, "strict").
func sidecarNoIdentity(app, inbound, admin, peerAuth string) string {
	s := `mode = "sidecar"
[admin]
address = "127.0.0.1:` + admin + `"
[server]
watch_config = false
drain_timeout = "2s"
[sidecar]
app = "` + app + `"
inbound = "127.0.0.1:` + inbound + `"
outbound = "127.0.0.2:0"
`
	if peerAuth != "" {
		s += `peer_authentication = "` + peerAuth + `"` + "\n"
	}
	return s
}

// TestSidecarWithoutIdentityRefused: a sidecar that would claim mTLS
// without certificates is refused by validate and by run (exit 1, the
// file:line: key message, nothing listening), unless the file says
// peer_authentication = "disable".
func TestSidecarWithoutIdentityRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildSluice(t)
	dir := t.TempDir()
	tests := []struct {
		name, peerAuth, line, value string
		flagMode                    bool
	}{
		{name: "default strict", peerAuth: "", line: ":7: ", value: `"strict" (the default)`},
		{name: "explicit strict", peerAuth: "strict", line: ":11: ", value: `"strict" (set here)`},
		{name: "permissive", peerAuth: "permissive", line: ":11: ", value: `"permissive" (set here)`},
		{name: "--mode sidecar on the command line", peerAuth: "", line: ":7: ", value: `"strict" (the default)`, flagMode: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inbound := freePort(t)
			cfg := sidecarNoIdentity("127.0.0.1:1", inbound, "0", tt.peerAuth)
			args := []string{"--config", filepath.Join(dir, "s"+string(rune('0'+i))+".toml")}
			if tt.flagMode {
				cfg = strings.Replace(cfg, `mode = "sidecar"`, `mode = "edge"`, 1)
				args = append(args, "--mode", "sidecar")
			}
			if err := os.WriteFile(args[1], []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			wantMsg := args[1] + tt.line + "sidecar.peer_authentication: " + tt.value + ` needs an [identity]`

			var out, errOut bytes.Buffer
			if code := run(append([]string{"validate"}, args...), &out, &errOut); code != 1 {
				t.Fatalf("validate: exit %d, want 1; stdout %q stderr %q", code, out.String(), errOut.String())
			}
			if !strings.Contains(errOut.String(), wantMsg) || !strings.Contains(errOut.String(), `peer_authentication = "disable"`) {
				t.Errorf("validate says:\n%s\nwant %q and the way out", errOut.String(), wantMsg)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"run"}, args...)...)
			var logs bytes.Buffer
			cmd.Stderr = &logs
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("run: %v, want exit 1; log:\n%s", err, logs.String())
			}
			if !strings.Contains(logs.String(), wantMsg) {
				t.Errorf("run says:\n%s\nwant %q", logs.String(), wantMsg)
			}
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+inbound, time.Second); err == nil {
				c.Close()
				t.Errorf("something listens on the inbound port %s after a refused start", inbound)
			}
		})
	}
}

// TestSidecarPeerAuthenticationDisable: "disable" serves plain text on
// the inbound address the file names, and /config says "disable".
func TestSidecarPeerAuthenticationDisable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildSluice(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app saw "+r.RequestURI)
	})}
	go app.Serve(ln)
	defer app.Close()

	inbound, admin := freePort(t), freePort(t)
	path := filepath.Join(t.TempDir(), "sidecar.toml")
	if err := os.WriteFile(path, []byte(sidecarNoIdentity(ln.Addr().String(), inbound, admin, "disable")), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"validate", "--config", path}, &out, &errOut); code != 0 {
		t.Fatalf("validate: exit %d: %s", code, errOut.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--config", path, "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()

	var body string
	for i := 0; ; i++ {
		resp, err := http.Get("http://127.0.0.1:" + inbound + "/pay/1")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if i == 100 {
			t.Fatalf("no plain-text answer on the inbound port: %v; log:\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body != "app saw /pay/1" {
		t.Errorf("plain text through the inbound side: %q", body)
	}

	resp, err := http.Get("http://127.0.0.1:" + admin + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cfg struct {
		Sidecar struct {
			Inbound            string `json:"inbound"`
			PeerAuthentication string `json:"peer_authentication"`
		} `json:"sidecar"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Sidecar.PeerAuthentication != "disable" || cfg.Sidecar.Inbound != "127.0.0.1:"+inbound {
		t.Errorf("/config sidecar = %+v, want disable on 127.0.0.1:%s", cfg.Sidecar, inbound)
	}
}
