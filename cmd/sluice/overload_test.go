package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAdminAnswersAtTheFDLimit runs sluice with a 128-descriptor limit
// (ulimit -n) and floods its data-plane listener with idle connections.
// With max_connections above what the limit allows, the process runs out
// of descriptors and the admin listener answers /ready from its reserve;
// with the default cap (derived from the limit), the flood is refused at
// the cap and counted, and admin answers too.
func TestAdminAnswersAtTheFDLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSluice(t)
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") })}
	go up.Serve(upLn)
	t.Cleanup(func() { up.Close() })

	for _, tc := range []struct {
		name, server string
		refused      bool // the flood meets the cap, not the descriptor limit
	}{
		{"descriptors exhausted", "max_connections = 100000", false},
		{"default cap from the limit", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adminPort, port := freePort(t), freePort(t)
			path := filepath.Join(t.TempDir(), "sluice.toml")
			os.WriteFile(path, []byte(`
[admin]
address = "127.0.0.1:`+adminPort+`"
[server]
watch_config = false
`+tc.server+`
[[listeners]]
name = "p"
address = "127.0.0.1:`+port+`"
read_header_timeout = "60s"
[[routes]]
name = "r"
backends = [ { cluster = "c" } ]
[[clusters]]
name = "c"
endpoints = ["`+upLn.Addr().String()+`"]
`), 0o644)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// The shell sets the limit and execs sluice, so the PID is
			// sluice's own.
			cmd := exec.CommandContext(ctx, "sh", "-c", `ulimit -n 128 && exec "$0" "$@"`, bin, "run", "--config", path, "--log-level", "warn")
			logs := tempLog(t)
			cmd.Stderr = logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
			}()
			// A new connection per request: each must be accepted at the
			// limit.
			admin := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			get := func(url string) (int, string, error) {
				resp, err := admin.Get(url)
				if err != nil {
					return 0, "", err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b), nil
			}
			ready := "http://127.0.0.1:" + adminPort + "/ready"
			for i := 0; ; i++ {
				if code, _, _ := get(ready); code == 200 {
					break
				}
				if i == 200 {
					t.Fatalf("sluice did not start:\n%s", readLog(logs))
				}
				time.Sleep(50 * time.Millisecond)
			}
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/limits"); err == nil && !regexp.MustCompile(`Max open files\s+128\s+128`).Match(b) {
				t.Fatalf("the limit did not apply:\n%s", b)
			}

			// 300 idle connections: more than 128 descriptors allow.
			var flood []net.Conn
			defer func() {
				for _, c := range flood {
					c.Close()
				}
			}()
			for i := 0; i < 300; i++ {
				c, err := net.Dial("tcp", "127.0.0.1:"+port)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				flood = append(flood, c)
			}
			if !tc.refused {
				// Wait until sluice has hit the limit (it says so once).
				for i := 0; !strings.Contains(readLog(logs), "out of file descriptors"); i++ {
					if i == 200 {
						t.Fatalf("sluice never ran out of descriptors:\n%s", readLog(logs))
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			for i := 0; i < 5; i++ {
				code, body, err := get(ready)
				if err != nil || code != 200 {
					t.Fatalf("admin /ready at the descriptor limit (try %d): %d %q %v\n%s", i, code, body, err, readLog(logs))
				}
			}
			code, metrics, err := get("http://127.0.0.1:" + adminPort + "/metrics")
			if err != nil || code != 200 {
				t.Fatalf("admin /metrics: %d %v", code, err)
			}
			overflow := regexp.MustCompile(`(?m)^sluice_downstream_cx_overflow_total (\d+)`).FindStringSubmatch(metrics)
			if overflow == nil {
				t.Fatalf("no sluice_downstream_cx_overflow_total in /metrics")
			}
			if n, _ := strconv.Atoi(overflow[1]); tc.refused && n == 0 {
				t.Errorf("the flood past the default cap was not refused and counted: overflow %s", overflow[1])
			}

			// Once the flood goes, the data plane serves again.
			for _, c := range flood {
				c.Close()
			}
			flood = nil
			for i := 0; ; i++ {
				code, body, err := get("http://127.0.0.1:" + port + "/")
				if err == nil && code == 200 && body == "up" {
					break
				}
				if i == 100 {
					t.Fatalf("data plane after the flood: %d %q %v", code, body, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
