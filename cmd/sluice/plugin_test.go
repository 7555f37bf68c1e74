package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/sluice-proxy/sluice/runtime/server"
)

// checkoutSDK is this checkout's sdk/ folder.
func checkoutSDK(t *testing.T) string {
	t.Helper()
	sdk, err := filepath.Abs(filepath.Join("..", "..", "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	return sdk
}

func TestPluginInitArgs(t *testing.T) {
	t.Setenv("SLUICE_SDK", "")
	sdk := checkoutSDK(t)
	tests := []struct {
		args []string
		code int
		want string // in stderr
	}{
		{args: nil, code: 2, want: "sluice plugin init NAME"},
		{args: []string{"frobnicate"}, code: 2, want: `unknown command "frobnicate"`},
		{args: []string{"init"}, code: 2, want: "want one NAME, got 0"},
		{args: []string{"init", "a", "b"}, code: 2, want: "want one NAME, got 2"},
		{args: []string{"init", "a", "--lang", "cobol"}, code: 2, want: "--lang must be go or rust"},
		{args: []string{"init", "Bad_Name", "--sdk", sdk}, code: 1, want: "lower-case letters"},
		{args: []string{"init", "a", "--sdk", t.TempDir()}, code: 1, want: "--sdk: "},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		if code := run(append([]string{"plugin"}, tc.args...), &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("sluice plugin %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}

func TestFindSDK(t *testing.T) {
	sdk := checkoutSDK(t)
	root := filepath.Dir(sdk)
	t.Setenv("SLUICE_SDK", "")
	for _, given := range []string{sdk, root} {
		got, how, err := findSDK(given, "rust")
		if err != nil || got != sdk || how != "--sdk" {
			t.Errorf("findSDK(%q) = %q, %q, %v; want %q from --sdk", given, got, how, err, sdk)
		}
	}
	t.Setenv("SLUICE_SDK", root)
	if got, how, err := findSDK("", "go"); err != nil || got != sdk || how != "$SLUICE_SDK" {
		t.Errorf("with SLUICE_SDK: %q, %q, %v", got, how, err)
	}
	t.Setenv("SLUICE_SDK", t.TempDir())
	if _, _, err := findSDK("", "go"); err == nil || !strings.Contains(err.Error(), "$SLUICE_SDK") {
		t.Errorf("a SLUICE_SDK without the SDK: %v, want an error naming it", err)
	}
	// A Go SDK without the Rust crate serves Go projects only.
	goOnly := t.TempDir()
	os.WriteFile(filepath.Join(goOnly, "go.mod"), []byte("module "+sdkModule+"\n\ngo 1.24\n"), 0o644)
	if _, _, err := findSDK(goOnly, "go"); err != nil {
		t.Errorf("Go-only SDK for go: %v", err)
	}
	if _, _, err := findSDK(goOnly, "rust"); err == nil {
		t.Error("Go-only SDK accepted for rust")
	}
	// With nothing given, the checkout this test binary was built from.
	t.Setenv("SLUICE_SDK", "")
	if got, _, err := findSDK("", "go"); err != nil || got != sdk {
		t.Errorf("default: %q, %v; want %q", got, err, sdk)
	}
}

// initAndMake runs `sluice plugin init` into a temporary directory and
// `make` there, as a user would, and returns the project and make's output.
func initAndMake(t *testing.T, name string, args []string, makeArgs ...string) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dir := filepath.Join(t.TempDir(), name)
	var out, errb bytes.Buffer
	if code := run(append([]string{"plugin", "init", name, "--dir", dir}, args...), &out, &errb); code != 0 {
		t.Fatalf("sluice plugin init: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "make") {
		t.Errorf("init does not say what to do next:\n%s", out.String())
	}
	cmd := exec.Command("make", makeArgs...)
	cmd.Dir = dir
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make in the generated project: %v\n%s", err, msg)
	}
	wasm, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
	if err != nil || len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		t.Fatalf("%s.wasm after make: %v (%d bytes)\n%s", name, err, len(wasm), msg)
	}
	toml, _ := os.ReadFile(filepath.Join(dir, "sluice.toml"))
	if !strings.Contains(string(toml), `wasm = "`+name+`.wasm"`) {
		t.Errorf("sluice.toml does not load %s.wasm:\n%s", name, toml)
	}
	loadInSluice(t, dir, "x-"+name)
	return dir, string(msg)
}

// loadInSluice runs the generated sluice.toml (on free ports, in front of
// a local upstream) and checks that the filter set its header.
func loadInSluice(t *testing.T, dir, header string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(r.Header)
	}), ReadHeaderTimeout: 5 * time.Second}
	go up.Serve(ln)
	defer up.Close()
	toml, err := os.ReadFile(filepath.Join(dir, "sluice.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(`"127.0.0.1:8080"`, `"127.0.0.1:0"`, `"127.0.0.1:9000"`, `"`+ln.Addr().String()+`"`).Replace(string(toml))
	cfg = "[admin]\naddress = \"127.0.0.1:0\"\n[server]\nwatch_config = false\n" + cfg
	path := filepath.Join(dir, "sluice-test.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{ConfigPath: path, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("sluice on the generated sluice.toml: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	resp, err := http.Get("http://" + srv.ListenerAddr("public") + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen http.Header
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil || resp.StatusCode != 200 {
		t.Fatalf("through sluice: status %d, %v", resp.StatusCode, err)
	}
	if got := seen.Get(header); got != "on" {
		t.Errorf("upstream saw %s = %q, want on (headers %v)", header, got, seen)
	}
}

func TestPluginInitGoProjectBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go wasip1 module (seconds)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	dir, out := initAndMake(t, "team-header", []string{"--sdk", checkoutSDK(t), "--module", "example.com/team-header"})
	if !strings.Contains(out, "ok  \texample.com/team-header") {
		t.Errorf("the generated test did not pass:\n%s", out)
	}
	mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(mod), "replace "+sdkModule+" => "+checkoutSDK(t)) {
		t.Errorf("go.mod does not use the checkout's SDK:\n%s", mod)
	}
}

func TestPluginInitRustProjectBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Rust wasm32 module (seconds)")
	}
	rustc := "/usr/bin/rustc"
	if _, err := os.Stat(rustc); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no /usr/bin/rustc; CI must have it (apt-get install rustc libstd-rust-dev-wasm32 lld-14)")
		}
		t.Skip("no /usr/bin/rustc (apt-get install rustc libstd-rust-dev-wasm32 lld-14)")
	}
	// The SDK from the environment this time.
	t.Setenv("SLUICE_SDK", filepath.Dir(checkoutSDK(t)))
	dir, out := initAndMake(t, "team-header", []string{"--lang", "rust"}, "RUSTC="+rustc)
	if !strings.Contains(out, "test result: ok. 3 passed") {
		t.Errorf("the generated tests did not pass:\n%s", out)
	}
	cargo, _ := os.ReadFile(filepath.Join(dir, "Cargo.toml"))
	if !strings.Contains(string(cargo), filepath.Join(checkoutSDK(t), "rust")) {
		t.Errorf("Cargo.toml does not use the checkout's crate:\n%s", cargo)
	}
}

// A filter author's path through the real binary, as the README tells it:
// `sluice plugin init` (no --sdk: the binary knows the checkout it was
// built from) writes a Go project whose tests use the test kit
// (plugins/filtertest) on the built .wasm, with no edit to go.mod and
// nothing of sluice fetched (GOPROXY=off); `go mod tidy` keeps the go line
// and `go get` of the kit works; `make run` starts the sluice that wrote
// the project, which serves the filter.
func TestPluginInitGoProjectUsesTheKit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice and a Go wasip1 module")
	}
	for _, tool := range []string{"go", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	bin := buildSluice(t)
	dir := filepath.Join(t.TempDir(), "team-header")
	// No network for sluice's modules; the third-party ones come from the
	// module cache that building sluice filled.
	env := append(os.Environ(), "SLUICE_SDK=", "GOPROXY=off", "GOFLAGS=", "GOWORK=off")
	sh := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	os.MkdirAll(dir, 0o755)
	sh(bin, "plugin", "init", "team-header", "--dir", dir, "--module", "example.com/team-header")
	mod := func() string { b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); return string(b) }
	wantGo := goLine(t, filepath.Join("..", "..", "go.mod"))
	if goLine(t, filepath.Join(dir, "go.mod")) != wantGo {
		t.Errorf("the project's go line is not sluice's %s:\n%s", wantGo, mod())
	}

	if out := sh("make", "test"); !strings.Contains(out, "ok  \texample.com/team-header") {
		t.Fatalf("make test:\n%s", out)
	}
	if out := sh("go", "test", "-count=1", "-v", "-run", "TestFilterOnSluice", "."); !strings.Contains(out, "--- PASS: TestFilterOnSluice") {
		t.Errorf("the test kit's test did not run:\n%s", out)
	}
	sh("go", "mod", "tidy")
	if got := goLine(t, filepath.Join(dir, "go.mod")); got != wantGo {
		t.Errorf("go mod tidy moved the go line to %s (want %s)", got, wantGo)
	}
	sh("go", "get", "github.com/sluice-proxy/sluice/plugins/filtertest")
	sh("go", "test", "-count=1", "./...")

	// make run: this binary, on the project's sluice.toml (moved to free
	// ports), in front of an app that echoes the headers it got.
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(r.Header) }), ReadHeaderTimeout: 5 * time.Second}
	go up.Serve(app)
	defer up.Close()
	public := "127.0.0.1:" + freePort(t)
	toml, _ := os.ReadFile(filepath.Join(dir, "sluice.toml"))
	cfg := strings.NewReplacer(`"127.0.0.1:8080"`, `"`+public+`"`, `"127.0.0.1:9000"`, `"`+app.Addr().String()+`"`).Replace(string(toml))
	os.WriteFile(filepath.Join(dir, "sluice.toml"), []byte("[admin]\naddress = \"127.0.0.1:0\"\n"+cfg), 0o644)
	logPath := filepath.Join(t.TempDir(), "make-run.log")
	logs, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	run := exec.Command("make", "run")
	run.Dir, run.Env, run.Stdout, run.Stderr = dir, env, logs, logs
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run.Wait() }()
	defer func() {
		syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
		<-done
	}()
	logText := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	client := &http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		resp, err := client.Get("http://" + public + "/")
		if err == nil {
			var seen http.Header
			json.NewDecoder(resp.Body).Decode(&seen)
			resp.Body.Close()
			if seen.Get("x-team-header") != "on" {
				t.Errorf("through make run's sluice: the app saw %v", seen)
			}
			break
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("make run exited (%v):\n%s", err, logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run never served:\n%s", logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logText(), `"`+bin+`" run --config sluice.toml`) {
		t.Errorf("make run did not start the sluice that wrote the project (%s):\n%s", bin, logText())
	}
}

// The Rust project's Makefile says what to install when rustc has no
// wasm32 target (as rustup's default toolchain has none), and builds
// when it has one (Debian's rustc with libstd-rust-dev-wasm32).
func TestPluginInitRustToolchainHint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	bin := buildSluice(t)
	dir := filepath.Join(t.TempDir(), "team-header")
	cmd := exec.Command(bin, "plugin", "init", "team-header", "--lang", "rust", "--dir", dir)
	cmd.Env = append(os.Environ(), "SLUICE_SDK=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plugin init: %v\n%s", err, out)
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if !strings.Contains(string(readme), "apt-get install rustc libstd-rust-dev-wasm32 lld-14") {
		t.Errorf("the project's README lacks the toolchain line:\n%s", readme)
	}
	// A rustc whose wasm32 std is missing: target-libdir is an empty dir.
	fake := filepath.Join(t.TempDir(), "rustc")
	os.WriteFile(fake, []byte("#!/bin/sh\ncase \"$*\" in *target-libdir*) echo "+t.TempDir()+" ;; *) exit 1 ;; esac\n"), 0o755)
	mk := exec.Command("make", "build", "RUSTC="+fake)
	mk.Dir = dir
	out, err := mk.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "has no wasm32-unknown-unknown target") ||
		!strings.Contains(string(out), "apt-get install rustc libstd-rust-dev-wasm32 lld-14") ||
		!strings.Contains(string(out), "rustup target add wasm32-unknown-unknown") {
		t.Errorf("make with a rustc without wasm32: %v\n%s", err, out)
	}

	rustc := "/usr/bin/rustc"
	if _, err := os.Stat("/usr/lib/rustlib/wasm32-unknown-unknown"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no wasm32 std for /usr/bin/rustc; CI must have it (apt-get install rustc libstd-rust-dev-wasm32 lld-14)")
		}
		t.Skip("no wasm32 std for /usr/bin/rustc (apt-get install rustc libstd-rust-dev-wasm32 lld-14)")
	}
	mk = exec.Command("make", "RUSTC="+rustc)
	mk.Dir = dir
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make: %v\n%s", err, out)
	}
	if wasm, err := os.ReadFile(filepath.Join(dir, "team-header.wasm")); err != nil || string(wasm[:4]) != "\x00asm" {
		t.Errorf("team-header.wasm: %v", err)
	}
}

// goLine is the go directive of a go.mod.
func goLine(t *testing.T, gomod string) string {
	t.Helper()
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s has no go line", gomod)
	return ""
}
