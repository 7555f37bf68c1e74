package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/server"
)

// dashboardConfig is a sluice with two routes, two plugins and two
// clusters, one of them with no process behind it, so the page has routes,
// plugins, a healthy endpoint, and errors to count.
const dashboardConfig = `
mode = "edge"

[admin]
address = "127.0.0.1:0"

[server]
watch_config = false
drain_timeout = "2s"

[[listeners]]
name = "public"
address = "127.0.0.1:0"
protocols = ["http1"]

[[plugins]]
name = "tag-requests"
wasm = "builtin:add-header"
config = { request_headers = { "x-tagged" = "yes" } }

[[plugins]]
name = "orders-cors"
wasm = "builtin:cors"
config = { origins = ["https://app.example.com"], methods = ["GET"] }

[[routes]]
name = "orders"
match = { path_prefix = "/orders" }
plugins = ["orders-cors", "tag-requests"]
backends = [ { cluster = "orders-app" } ]

[[routes]]
name = "gone"
match = { path_prefix = "/gone" }
plugins = ["tag-requests"]
retry = { attempts = 1 }
backends = [ { cluster = "nobody-home" } ]

[[clusters]]
name = "orders-app"
endpoints = ["%s"]

[[clusters]]
name = "nobody-home"
endpoints = ["%s"]
`

// pageState is what the test reads off the page, through the DOM.
type pageState struct {
	Rate      string            `json:"rate"`
	Errors    string            `json:"errors"`
	Routes    []string          `json:"routes"`
	Plugins   []string          `json:"plugins"`
	RouteRate map[string]string `json:"routeRate"`
	Status    string            `json:"status"`
	Endpoints int               `json:"endpoints"`
}

const readPage = `JSON.stringify({
  rate: document.getElementById("rate-requests").textContent,
  errors: document.getElementById("rate-errors").textContent,
  routes: [...document.querySelectorAll("#routes tbody tr")].map(r => r.dataset.name),
  plugins: [...document.querySelectorAll("#plugins tbody tr")].map(r => r.dataset.name),
  routeRate: Object.fromEntries([...document.querySelectorAll("#routes tbody tr")].map(r => [r.dataset.name, r.querySelector(".rate") ? r.querySelector(".rate").textContent : ""])),
  status: document.getElementById("status").textContent,
  endpoints: document.querySelectorAll("#endpoints tbody tr").length,
})`

// The dashboard in a real headless browser against a real sluice: the
// page loads with nothing on the console, lists the config's routes and
// plugins, and its rate figures go up while a bounded request loop runs
// and back to zero after it. The browser is stopped, and the test checks
// its process is gone.
func TestDashboardInBrowser(t *testing.T) {
	chromium := findChromium(t)

	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }), ReadHeaderTimeout: 5 * time.Second}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(appLn)
	t.Cleanup(func() { app.Close() })
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // refused from now on

	path := filepath.Join(t.TempDir(), "sluice.toml")
	os.WriteFile(path, []byte(fmt.Sprintf(dashboardConfig, appLn.Addr(), deadAddr)), 0o644)
	s, err := server.New(server.Options{ConfigPath: path, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	admin := "http://" + s.AdminAddr()
	public := "http://" + s.ListenerAddr("public")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		// Root in a container has no user namespace for the sandbox;
		// the page is the test's own, on loopback.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
	)
	allocCtx, stopAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer stopAlloc()
	browserCtx, stopBrowser := chromedp.NewContext(allocCtx)
	var browserPID int
	defer func() {
		// The browser and every process it started (zygote, renderers,
		// GPU and network services), taken just before it is stopped.
		pids := descendants(browserPID)
		stopBrowser()
		stopAlloc()
		// Chromium's helper processes exit a moment after the browser
		// does; give them a bounded while.
		gone := func(pid int) bool {
			return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) || zombie(pid)
		}
		deadline := time.Now().Add(15 * time.Second)
		for _, pid := range pids {
			for !gone(pid) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if !gone(pid) {
				t.Errorf("browser process %d is still running 15s after the test stopped the browser", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}()

	// Everything the page writes to the console, from the first load on.
	var mu sync.Mutex
	var console []string
	messages := chromedp.Console(browserCtx)
	if err := chromedp.Do(browserCtx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium, err)
	}
	if p := chromedp.FromContext(browserCtx).Browser.Process(); p != nil {
		browserPID = p.Pid
	}
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				mu.Lock()
				console = append(console, m.String())
				mu.Unlock()
			}
		}
	}()

	if err := chromedp.Do(browserCtx, chromedp.Navigate(admin+"/?refresh=0.25")); err != nil {
		t.Fatal(err)
	}
	read := func() pageState {
		t.Helper()
		text, err := chromedp.Run(browserCtx, chromedp.Evaluate[string](readPage))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		var st pageState
		if err := json.Unmarshal([]byte(text), &st); err != nil {
			t.Fatalf("page state %q: %v", text, err)
		}
		return st
	}
	// waitFor polls the page until ok holds (bounded by ctx).
	waitFor := func(what string, ok func(pageState) bool) pageState {
		t.Helper()
		for {
			st := read()
			if ok(st) {
				return st
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the page never showed %s; last: %+v", what, st)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	idle := waitFor("its first rates", func(st pageState) bool { return st.Rate != "–" && st.Rate != "" })
	if idle.Rate != "0.0" {
		t.Errorf("requests/s with no traffic = %q, want 0.0", idle.Rate)
	}
	if strings.Join(idle.Routes, ",") != "orders,gone" {
		t.Errorf("routes on the page = %v, want the config's orders, gone", idle.Routes)
	}
	if strings.Join(idle.Plugins, ",") != "orders-cors,tag-requests" {
		t.Errorf("plugins on the page = %v, want orders-cors, tag-requests", idle.Plugins)
	}
	if idle.Endpoints < 8 {
		t.Errorf("the endpoint index has %d rows", idle.Endpoints)
	}

	// A bounded request loop: until the page shows the traffic or ctx ends.
	loopCtx, stopLoop := context.WithCancel(ctx)
	loopDone := make(chan int)
	go func() {
		client := &http.Client{Timeout: 5 * time.Second}
		n := 0
		for loopCtx.Err() == nil && n < 100000 {
			for _, p := range []string{"/orders/1", "/orders/2", "/gone"} {
				if resp, err := client.Get(public + p); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				n++
			}
		}
		loopDone <- n
	}()
	busy := waitFor("the traffic", func(st pageState) bool {
		return positive(st.Rate) && positive(st.Errors) && positive(st.RouteRate["orders"]) && positive(st.RouteRate["gone"])
	})
	stopLoop()
	sent := <-loopDone
	t.Logf("%d requests sent; the page showed %s req/s, %s errors/s", sent, busy.Rate, busy.Errors)
	if shot := os.Getenv("SLUICE_DASHBOARD_SCREENSHOT"); shot != "" {
		png, err := chromedp.Run(browserCtx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(shot, png, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}
	// The plugins' mean call time comes from the time their calls took.
	resp, err := http.Get(admin + "/plugins")
	if err != nil {
		t.Fatal(err)
	}
	var plugins []struct {
		Name    string
		Runtime struct {
			Calls       uint64  `json:"calls"`
			CallSeconds float64 `json:"call_seconds"`
		}
	}
	json.NewDecoder(resp.Body).Decode(&plugins)
	resp.Body.Close()
	for _, p := range plugins {
		if p.Runtime.Calls == 0 || p.Runtime.CallSeconds <= 0 {
			t.Errorf("plugin %s after traffic: %d calls taking %gs in all", p.Name, p.Runtime.Calls, p.Runtime.CallSeconds)
		}
	}
	waitFor("the rate falling back to 0 after the loop", func(st pageState) bool { return st.Rate == "0.0" })

	mu.Lock()
	defer mu.Unlock()
	if len(console) > 0 {
		t.Errorf("the page wrote errors or warnings on the console:\n%s", strings.Join(console, "\n"))
	}
}

// descendants is pid and the processes under it (from /proc), or nothing
// for pid 0.
func descendants(pid int) []int {
	if pid == 0 {
		return nil
	}
	children := map[int][]int{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// parentOf reads the parent PID from /proc/PID/stat (the field after the
// state, which follows the parenthesised command name).
func parentOf(pid int) (int, bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// zombie reports whether pid has exited and waits only to be reaped (by
// a parent other than this test, which it cannot reap).
func zombie(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	return len(f) > 0 && f[0] == "Z"
}

func positive(figure string) bool {
	f, err := strconv.ParseFloat(figure, 64)
	return err == nil && f > 0
}

// findChromium returns Debian's chromium. Without it the test skips on a
// developer's machine, but fails in CI (CI=true), where make tools
// installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI=true: the dashboard test must run there (make tools installs it)")
	}
	t.Skip("chromium is not installed: `make tools` (or apt-get install chromium) installs it; this test drives it headless")
	return ""
}
