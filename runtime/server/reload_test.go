package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"
)

func routeTo(cluster string) string {
	return `
[[routes]]
name = "r"
backends = [ { cluster = "` + cluster + `" } ]
`
}

func clusters(a, b *echoUpstream) string {
	return `
[[clusters]]
name = "a"
endpoints = ["` + a.addr + `"]
[[clusters]]
name = "b"
endpoints = ["` + b.addr + `"]
`
}

func TestReloadUnderLoadLosesNothing(t *testing.T) {
	a := startEcho(t, "a", nil)
	b := startEcho(t, "b", nil)
	ts := startServer(t, baseConfig(routeTo("a")+clusters(a, b)))
	url := ts.url("/")

	var ok, failed atomic.Int64
	var seenB atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				if strings.Contains(string(b), `"name":"b"`) {
					seenB.Store(true)
				}
			}
		}()
	}
	// Flip the route between clusters while the load runs, then try a
	// broken file, which must be refused without a blip.
	for i := 0; i < 6; i++ {
		time.Sleep(30 * time.Millisecond)
		target := "b"
		if i%2 == 1 {
			target = "a"
		}
		if err := os.WriteFile(ts.path, []byte(baseConfig(routeTo(target)+clusters(a, b))), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ts.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	os.WriteFile(ts.path, []byte(baseConfig(routeTo("nope")+clusters(a, b))), 0o644)
	err := ts.Reload()
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad config reload: %v, want an error naming the unknown cluster", err)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed across reloads (%d ok)", failed.Load(), ok.Load())
	}
	if !seenB.Load() {
		t.Fatal("no request reached cluster b: the reload never took effect")
	}
	resp, err := http.Get(url)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the refused reload: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestAdminAPI(t *testing.T) {
	a := startEcho(t, "a", nil)
	b := startEcho(t, "b", nil)
	ts := startServer(t, baseConfig(routeTo("a")+clusters(a, b)))
	admin := "http://" + ts.AdminAddr()
	for i := 0; i < 3; i++ {
		resp, err := http.Get(ts.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/ready"); code != 200 || body != "ready\n" {
		t.Fatalf("/ready: %d %q", code, body)
	}
	// A request is counted when its stream ends, which may be just after
	// the client has the response.
	eventually(t, "the third request counted", func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `sluice_http_request_duration_seconds_count{route="r"} 3`)
	})
	_, metrics := get("/metrics")
	for _, want := range []string{
		`sluice_http_requests_total{route="r",code_class="2xx"} 3`,
		`sluice_http_request_duration_seconds_count{route="r"} 3`,
		`sluice_upstream_cx_active{cluster="a"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, cfgJSON := get("/config")
	var cfg map[string]any
	if code != 200 || json.Unmarshal([]byte(cfgJSON), &cfg) != nil || cfg["routes"] == nil {
		t.Fatalf("/config: %d %q", code, cfgJSON)
	}
	code, clusterDump := get("/clusters")
	if code != 200 || !strings.Contains(clusterDump, a.addr) {
		t.Fatalf("/clusters: %d %q", code, clusterDump)
	}

	// POST /config/reload: applied, and refused with the validate errors.
	os.WriteFile(ts.path, []byte(baseConfig(routeTo("b")+clusters(a, b))), 0o644)
	resp, err := http.Post(admin+"/config/reload", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reload: %v %v", err, resp)
	}
	resp.Body.Close()
	_, e := getJSON(t, http.DefaultClient, mustReq(t, "GET", ts.url("/"), nil))
	if e.Name != "b" {
		t.Fatalf("after reload the route reaches %q, want b", e.Name)
	}
	os.WriteFile(ts.path, []byte(baseConfig(routeTo("b")+clusters(a, b)+"\nbogus_key = 1\n")), 0o644)
	resp, err = http.Post(admin+"/config/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "bogus_key") {
		t.Fatalf("bad reload: %d %s", resp.StatusCode, body)
	}
}

func TestAccessLogLine(t *testing.T) {
	a := startEcho(t, "a", nil)
	b := startEcho(t, "b", nil)
	ts := startServer(t, baseConfig(routeTo("a")+clusters(a, b)))
	req := mustReq(t, "POST", ts.url("/logged?q=1"), strings.NewReader("12345"))
	req.Header.Set("X-Request-Id", "rid-1")
	req.Header.Set("User-Agent", "probe/1.0")
	// The client's own connection, to know its address and port.
	conn, err := net.Dial("tcp", ts.ListenerAddr("public"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	lines := accessLines(t, ts, 1)
	if len(lines) != 1 {
		t.Fatalf("%d access-log lines, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	want := map[string]any{"method": "POST", "path": "/logged?q=1", "protocol": "HTTP/1.1", "response_code": int64(200),
		"response_flags": "-", "response_code_details": "via_upstream", "route_name": "r", "upstream_cluster": "a",
		"upstream_host": a.addr, "request_id": "rid-1", "user_agent": "probe/1.0", "bytes_received": int64(5),
		"downstream_remote_address": conn.LocalAddr().String(), "authority": ts.ListenerAddr("public"), "listener": "public"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("access log %s = %v (%T), want %v", k, f[k], f[k], v)
		}
	}
	if f["bytes_sent"].(int64) == 0 || f["connection_id"].(uint64) == 0 {
		t.Errorf("access log lacks bytes sent or the connection id: %v", f)
	}
	total, up := f["duration"].(time.Duration), f["upstream_service_time"].(time.Duration)
	if up <= 0 || total < up {
		t.Errorf("duration %v, upstream_service_time %v: want 0 < upstream <= total", total, up)
	}
	if !strings.HasPrefix(f["x_forwarded_for"].(string), "127.0.0.1") {
		t.Errorf("x_forwarded_for = %q, want the client's address", f["x_forwarded_for"])
	}
}

// TestAccessLogResponseFlags: a request that fails upstream carries
// Envoy's response flag for why, and URX when retries did not help.
func TestAccessLogResponseFlags(t *testing.T) {
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := refused.Addr().String()
	refused.Close() // nothing listens there now: connect refused
	a := startEcho(t, "a", nil)
	ts := startServer(t, baseConfig(`
[[routes]]
name = "dead"
match = { path_prefix = "/dead" }
backends = [ { cluster = "dead" } ]
[[routes]]
name = "once"
match = { path_prefix = "/once" }
retry = { attempts = 0 }
backends = [ { cluster = "dead" } ]
[[routes]]
name = "r"
match = { path_prefix = "/ok" }
backends = [ { cluster = "a" } ]
[[clusters]]
name = "dead"
endpoints = ["`+dead+`"]
[[clusters]]
name = "a"
endpoints = ["`+a.addr+`"]
`))
	for i, tc := range []struct{ path, flags string }{
		{"/dead", "UF,URX"}, // the default policy retries connect failures
		{"/once", "UF"},
		{"/nowhere", "NR"},
		{"/ok", "-"},
	} {
		resp, err := http.Get(ts.url(tc.path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lines := accessLines(t, ts, i+1)
		f := lines[len(lines)-1].ContextMap()
		if f["path"] != tc.path || f["response_flags"] != tc.flags {
			t.Errorf("%s: access line path %v flags %v (status %v, details %v), want flags %s", tc.path, f["path"], f["response_flags"], f["response_code"], f["response_code_details"], tc.flags)
		}
	}
}

func TestConfigFileWatchReloads(t *testing.T) {
	a := startEcho(t, "a", nil)
	b := startEcho(t, "b", nil)
	cfg := strings.Replace(baseConfig(routeTo("a")+clusters(a, b)), "watch_config = false", "watch_config = true", 1)
	ts := startServer(t, cfg)
	time.Sleep(1100 * time.Millisecond) // a different mtime second
	os.WriteFile(ts.path, []byte(strings.Replace(cfg, `cluster = "a"`, `cluster = "b"`, 1)), 0o644)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, e := getJSON(t, http.DefaultClient, mustReq(t, "GET", ts.url("/"), nil))
		if e.Name == "b" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the changed file was not picked up within 5s")
}

// accessLines waits (boundedly) for n access-log lines: a line is written
// when the stream ends, which may come just after the client has the
// whole response.
func accessLines(t *testing.T, ts *testServer, n int) []observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := ts.logs.FilterMessage("request").All()
		if len(lines) >= n || time.Now().After(deadline) {
			if len(lines) < n {
				t.Fatalf("%d access-log lines, want %d", len(lines), n)
			}
			return lines
		}
		time.Sleep(time.Millisecond)
	}
}
