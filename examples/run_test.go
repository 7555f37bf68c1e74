package examples

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// Every example whose route restricts methods and runs cors allows in a
// preflight only methods the route serves: a preflight allowing DELETE,
// then a 404 for the DELETE, is what a browser user would meet.
func TestCORSMethodsAgreeWithRoutes(t *testing.T) {
	files, _ := filepath.Glob("*.toml")
	for _, f := range files {
		cfg, err := config.Parse(f, mustRead(t, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, r := range cfg.Routes {
			if len(r.Match.Methods) == 0 {
				continue
			}
			for _, name := range r.Plugins {
				for _, p := range cfg.Plugins {
					if p.Name != name || p.Wasm != "builtin:cors" {
						continue
					}
					methods, _ := p.Config["methods"].([]any)
					if len(methods) == 0 {
						t.Errorf("%s: route %s serves %v, but cors %s allows Kong's default methods (all of them)", f, r.Name, r.Match.Methods, p.Name)
					}
					for _, m := range methods {
						if !slices.Contains(r.Match.Methods, fmt.Sprint(m)) {
							t.Errorf("%s: cors %s allows %v, which route %s (methods %v) answers 404", f, p.Name, m, r.Name, r.Match.Methods)
						}
					}
				}
			}
		}
	}
}

// make run-kong and make run-istio, as a user runs them: everything the
// example needs comes up (demo upstreams, redis-server for the Kong
// example's Redis policy, sluice), the example answers as its comments
// say, and an interrupt stops every process. The configs are copies on
// free ports, so the test runs beside anything else.
func TestMakeRunExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice and runs make")
	}
	t.Run("kong", func(t *testing.T) {
		if _, err := exec.LookPath("redis-server"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("redis-server is missing (make tools installs it)")
			}
			t.Skip("redis-server is missing: make tools installs it")
		}
		ex := startExample(t, "kong", "kong-migration.toml")
		users := "http://" + ex.public + "/api/v2/users/1?apikey=change-me"
		resp, body := ex.get(t, "GET", users, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `"upstream": "user-service"`) {
			t.Fatalf("GET users with the key: %d %s", resp.StatusCode, body)
		}
		// user-service answered X-Kong-Limit: sms=1, which was counted
		// (a fresh Redis: 10 a minute, one used) and not passed on.
		if v := resp.Header.Get("X-Kong-Limit"); v != "" {
			t.Errorf("X-Kong-Limit reached the client: %q", v)
		}
		if v := resp.Header.Get("X-Ratelimit-Remaining-Sms-Minute"); v != "9" {
			t.Errorf("X-RateLimit-Remaining-Sms-Minute = %q after one SMS, want 9 (X-Kong-Limit counted)", v)
		}

		// The preflight allows what the orders route serves, and only that.
		orders := "http://" + ex.public + "/api/v2/orders"
		resp, _ = ex.get(t, "OPTIONS", orders, map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"})
		allowed := resp.Header.Get("Access-Control-Allow-Methods")
		if resp.StatusCode/100 != 2 || allowed == "" {
			t.Fatalf("preflight: %d, Access-Control-Allow-Methods %q", resp.StatusCode, allowed)
		}
		for _, m := range strings.Split(allowed, ",") {
			m = strings.TrimSpace(m)
			// jwt answers 401 (no token): the route took the request.
			if resp, _ := ex.get(t, m, orders, map[string]string{"Origin": "https://app.example.com"}); resp.StatusCode == 404 {
				t.Errorf("the preflight allows %s, and the route answers it 404", m)
			}
		}
		if strings.Contains(allowed, "DELETE") {
			t.Errorf("the preflight allows DELETE (%q), which the orders route does not serve", allowed)
		}
		ex.stop(t, "curl -si 'http://"+ex.public+"/api/v2/users/1?apikey=change-me'")
	})
	t.Run("istio", func(t *testing.T) {
		ex := startExample(t, "istio", "istio-canary.toml")
		orders := "http://" + ex.public + "/api/v2/orders"
		resp, body := ex.get(t, "GET", orders, map[string]string{"x-canary": "true"})
		if resp.StatusCode != 200 || !strings.Contains(body, `"upstream": "order-service v2"`) {
			t.Errorf("GET with x-canary: %d %s; want v2's demo upstream", resp.StatusCode, body)
		}
		resp, body = ex.get(t, "GET", orders, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `"upstream": "order-service v`) {
			t.Errorf("GET: %d %s", resp.StatusCode, body)
		}
		ex.stop(t, "curl -s -H 'x-canary: true' http://"+ex.public+"/api/v2/orders")
	})
}

type example struct {
	admin, public string
	ports         []string // every address the example listens on
	done          chan error
	pgid          int
	log           string
}

func (ex *example) logText() string { b, _ := os.ReadFile(ex.log); return string(b) }

func (ex *example) get(t *testing.T, method, url string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, url, err, ex.logText())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// startExample runs make run-NAME on a copy of file whose every loopback
// port is a free one, and waits until sluice is ready and the example's
// dashboard answers.
func startExample(t *testing.T, name, file string) *example {
	t.Helper()
	root, _ := filepath.Abs("..")
	dir := t.TempDir()
	ports := map[string]string{}
	moved := regexp.MustCompile(`127\.0\.0\.1:(\d+)`).ReplaceAllStringFunc(string(mustRead(t, file)), func(a string) string {
		p := strings.TrimPrefix(a, "127.0.0.1:")
		if ports[p] == "" {
			ports[p] = freePort(t)
		}
		return "127.0.0.1:" + ports[p]
	})
	path := filepath.Join(dir, file)
	os.WriteFile(path, []byte(moved), 0o644)
	ex := &example{admin: "127.0.0.1:" + ports["9901"], public: "127.0.0.1:" + ports["8080"], log: filepath.Join(dir, "make.log"), done: make(chan error, 1)}
	for _, p := range ports {
		ex.ports = append(ex.ports, "127.0.0.1:"+p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "run-"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "EXAMPLE_CONFIG="+path)
	// Its own process group: the test interrupts make and all it started
	// as Ctrl-C would, and kills the group if anything lingers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs, err := os.Create(ex.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ex.pgid = cmd.Process.Pid
	go func() { ex.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-ex.done:
			ex.done <- err
		default:
			syscall.Kill(-ex.pgid, syscall.SIGKILL)
			ex.done <- <-ex.done
		}
	})

	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := http.Get("http://" + ex.admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-ex.done:
			ex.done <- err
			t.Fatalf("make run-%s exited (%v) before sluice was ready:\n%s", name, err, ex.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run-%s: sluice never became ready:\n%s", name, ex.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp, body := ex.get(t, "GET", "http://"+ex.admin+"/", map[string]string{"Accept": "text/html"}); resp.StatusCode != 200 || !strings.Contains(body, "dashboard.js") {
		t.Errorf("the dashboard at http://%s/: %d", ex.admin, resp.StatusCode)
	}
	return ex
}

// stop interrupts the example as Ctrl-C would, after checking that it
// printed hint (what to try); every port it listened on is free after.
func (ex *example) stop(t *testing.T, hint string) {
	t.Helper()
	// The hints come after readiness; give the script a moment to print.
	for i := 0; i < 50 && !strings.Contains(ex.logText(), hint); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(ex.logText(), hint) {
		t.Errorf("the example did not say %q:\n%s", hint, ex.logText())
	}
	syscall.Kill(-ex.pgid, syscall.SIGINT)
	select {
	case err := <-ex.done:
		ex.done <- err
	case <-time.After(60 * time.Second):
		t.Fatalf("still running 60s after SIGINT:\n%s", ex.logText())
	}
	if err := syscall.Kill(-ex.pgid, 0); err == nil {
		t.Errorf("processes of the example's group are still running after it stopped:\n%s", ex.logText())
		syscall.Kill(-ex.pgid, syscall.SIGKILL)
	}
	for _, a := range ex.ports {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the example stopped", a)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
