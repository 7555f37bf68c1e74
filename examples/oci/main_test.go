package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunOCI does what `make run-oci` does, bounded: the registry process
// pushes the header-rust example, sluice pulls it by digest and serves it
// in front of an upstream; then a restart with the registry gone serves it
// from the module cache. Every process is stopped by its PID.
func TestRunOCI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	dir := t.TempDir()
	bin := func(name, pkg string) string {
		out := filepath.Join(dir, name)
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
		return out
	}
	sluice, registry := bin("sluice", "../../cmd/sluice"), bin("oci-registry", ".")

	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "x-hello=%s", r.Header.Get("X-Hello"))
	})}
	upLn := listen(t)
	go up.Serve(upLn)
	defer up.Close()

	cfgPath := filepath.Join(dir, "sluice.toml")
	reg := start(t, registry, "-addr", "127.0.0.1:0", "-wasm", "../filters/header-rust/header-rust.wasm",
		"-template", "sluice.toml.in", "-out", cfgPath)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(cfgPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the registry never wrote the config")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(cfgPath)
	listener, admin := freeAddr(t), freeAddr(t)
	cfg := strings.NewReplacer(
		`"127.0.0.1:8080"`, `"`+listener+`"`,
		`"127.0.0.1:9901"`, `"`+admin+`"`,
		`"127.0.0.1:9000"`, `"`+upLn.Addr().String()+`"`,
		"[wasm]\n", "[wasm]\ncache_dir = \""+filepath.Join(dir, "cache")+"\"\n",
	).Replace(string(b))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	serve := func() time.Duration {
		began := time.Now()
		p := start(t, sluice, "run", "--config", cfgPath)
		defer stop(t, p)
		for {
			resp, err := http.Get("http://" + listener + "/hello")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && resp.Header.Get("X-Filter") == "header-rust" && string(body) == "x-hello=rust" {
					break
				}
			}
			if time.Since(began) > 60*time.Second {
				t.Fatalf("sluice never served the OCI plugin (last: %v)", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(began)
		resp, err := http.Get("http://" + admin + "/plugins")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rows []struct{ State, Digest, Source string }
		json.NewDecoder(resp.Body).Decode(&rows)
		if len(rows) != 1 || rows[0].State != "serving" || !strings.Contains(rows[0].Source, "@sha256:"+rows[0].Digest) {
			t.Fatalf("/plugins: %+v", rows)
		}
		return took
	}
	cold := serve()
	stop(t, reg)
	warm := serve() // the registry is gone: from the module cache
	t.Logf("first request served %v after start pulling by digest, %v from the warm module cache", cold.Round(time.Millisecond), warm.Round(time.Millisecond))
}

func listen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func freeAddr(t *testing.T) string {
	ln := listen(t)
	defer ln.Close()
	return ln.Addr().String()
}

// start runs a process; its output is shown if the test fails.
func start(t *testing.T, path string, args ...string) *exec.Cmd {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), filepath.Base(path)+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop(t, cmd)
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("%s output:\n%s", filepath.Base(path), b)
		}
		logFile.Close()
	})
	return cmd
}

// stop ends the process by its PID (once; later calls are no-ops).
func stop(t *testing.T, cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
