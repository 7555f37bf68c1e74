package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// grpcCases are the test cases of grpc-go's interop client that need no
// cloud credentials (interop/client/client.go, v1.85.0), in its order.
var grpcCases = []string{
	"empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
	"timeout_on_sleeping_server", "cancel_after_begin", "cancel_after_first_response",
	"status_code_and_message", "special_status_message", "custom_metadata",
	"unimplemented_method", "unimplemented_service",
	"orca_per_rpc", "orca_oob", "rpc_soak", "channel_soak",
}

// grpcSkipped are the client's cases that grpc-go's own interop script
// (interop/interop_test.sh) does not run either, and why.
var grpcSkipped = map[string]string{
	"compute_engine_creds":               "needs Google cloud credentials",
	"service_account_creds":              "needs Google cloud credentials",
	"jwt_token_creds":                    "needs Google cloud credentials",
	"per_rpc_creds":                      "needs Google cloud credentials",
	"oauth2_auth_token":                  "needs Google cloud credentials",
	"google_default_credentials":         "needs Google cloud credentials",
	"compute_engine_channel_credentials": "needs Google cloud credentials",
	"pick_first_unary":                   "needs several servers with server ids behind one name (grpc-go's interop_test.sh skips it as needing a special environment)",
}

// grpcServiceConfig is what grpc-go's interop_test.sh gives every case, so
// the ORCA cases have the load-report policy they check.
const grpcServiceConfig = `{ "loadBalancingConfig": [{ "test_backend_metrics_load_balancer": {} }]}`

var (
	interopOnce sync.Once
	interopDir  string
	interopErr  error
)

// interopBinaries builds grpc-go's interop client and server once, from
// the pinned module in conformance/grpcinterop, into a cache directory
// keyed by its go.sum (rebuilt only when the pin changes).
func interopBinaries() (client, server string, err error) {
	interopOnce.Do(func() {
		src, _ := filepath.Abs("grpcinterop")
		sum, err := os.ReadFile(filepath.Join(src, "go.sum"))
		if err != nil {
			interopErr = err
			return
		}
		h := sha256.Sum256(sum)
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "sluice-conformance", "grpc-interop-"+hex.EncodeToString(h[:6]))
		if exists(filepath.Join(dir, "client")) && exists(filepath.Join(dir, "server")) {
			interopDir = dir
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			interopErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		tmp, err := os.MkdirTemp(dir, "build-")
		if err != nil {
			interopErr = err
			return
		}
		defer os.RemoveAll(tmp)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp+"/",
			"google.golang.org/grpc/interop/client", "google.golang.org/grpc/interop/server")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			interopErr = fmt.Errorf("building grpc-go interop binaries: %v: %s", err, tail(string(out), 600))
			return
		}
		for _, b := range []string{"client", "server"} {
			if err := os.Rename(filepath.Join(tmp, b), filepath.Join(dir, b)); err != nil {
				interopErr = err
				return
			}
		}
		interopDir = dir
	})
	return filepath.Join(interopDir, "client"), filepath.Join(interopDir, "server"), interopErr
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestGRPCInterop(t *testing.T) {
	intro := "grpc-go v1.85.0's own interop client (`google.golang.org/grpc/interop/client`) against its interop server, with sluice in between (route timeout 30s, h2c cluster). One client process per case. Every case gets grpc-go's `interop_test.sh` service config (the ORCA test LB policy); the cases that script skips are listed as skipped."
	report.Suite(SuiteGRPCH2C, intro)
	report.Suite(SuiteGRPCTLS, intro+" The client uses -use_tls with a CA generated for the run and -server_host_override=localhost.")
	report.Suite(SuiteGRPCFilter, intro+" The route runs the built-in add-header Wasm filter (request and response headers), so every message, header and trailer crosses a filter chain.")
	client, server, err := interopBinaries()
	if err != nil {
		for _, s := range []string{SuiteGRPCH2C, SuiteGRPCTLS, SuiteGRPCFilter} {
			record(t, s, Row{Case: "build interop binaries", Note: err.Error()})
		}
		return
	}
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv := exec.CommandContext(ctx, server, "-port", strconv.Itoa(port))
	srv.WaitDelay = 5 * time.Second
	var srvOut strings.Builder
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		cancel()
		t.Fatalf("interop server: %v", err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	upstream := "127.0.0.1:" + strconv.Itoa(port)
	if !waitTCP(upstream, 15*time.Second) {
		t.Fatalf("interop server did not listen on %s: %s", upstream, srvOut.String())
	}
	p := newPKI(t)
	// Two sluices: config validation refuses two listeners on
	// 127.0.0.1:0 in one file.
	route := `
[[routes]]
name = "grpc"
timeout = "30s"
backends = [ { cluster = "interop" } ]

[[clusters]]
name = "interop"
protocol = "h2c"
endpoints = ["` + upstream + `"]
`
	h2c := startSluice(t, base+`
[[listeners]]
name = "l"
address = "127.0.0.1:0"
protocols = ["http1", "h2c"]
`+route)
	tlsS := startSluice(t, base+`
[[listeners]]
name = "l"
address = "127.0.0.1:0"
protocols = ["h2"]
tls = { cert = "`+p.CertFile+`", key = "`+p.KeyFile+`" }
`+route)
	filtered := startSluice(t, base+`
[[listeners]]
name = "l"
address = "127.0.0.1:0"
protocols = ["http1", "h2c"]

[[plugins]]
name = "hello"
wasm = "builtin:add-header"
config = { request_headers = { "x-hello" = "from sluice" }, response_headers = { "x-served-by" = "sluice" } }
`+strings.Replace(route, `name = "grpc"`, `name = "grpc"
plugins = ["hello"]`, 1))
	for _, tc := range []struct {
		suite string
		s     *sluice
		extra []string
	}{
		{SuiteGRPCH2C, h2c, nil},
		{SuiteGRPCTLS, tlsS, []string{"-use_tls", "-use_test_ca", "-ca_file", p.CAFile, "-server_host_override", "localhost"}},
		{SuiteGRPCFilter, filtered, nil},
	} {
		_, portStr, _ := strings.Cut(tc.s.ListenerAddr("l"), ":")
		for _, name := range grpcCases {
			args := append([]string{"-server_host", "127.0.0.1", "-server_port", portStr, "-test_case", name,
				"-service_config_json", grpcServiceConfig}, tc.extra...)
			if strings.HasSuffix(name, "_soak") {
				args = append(args, "-soak_iterations", "5", "-soak_overall_timeout_seconds", "20")
			}
			row := runInteropCase(client, args)
			row.Case = name
			record(t, tc.suite, row)
		}
		if tc.suite == SuiteGRPCFilter {
			record(t, tc.suite, filterRanRow(tc.s))
		}
		for _, name := range sortedKeys(grpcSkipped) {
			record(t, tc.suite, Row{Case: name, Skipped: true, Note: grpcSkipped[name]})
		}
	}
}

func runInteropCase(client string, args []string) Row {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, client, args...)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		return Row{Note: fmt.Sprintf("%v after %s: %s", err, took, lastLines(string(out), 3))}
	}
	return Row{Pass: true, Note: took.String()}
}

// lastLines is the end of a program's output, for a report cell.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return tail(strings.Join(lines, " / "), 500)
}

// filterRanRow proves the filter was on the path: the admin /plugins page
// counts its callbacks.
func filterRanRow(s *sluice) Row {
	row := Row{Case: "the Wasm filter ran on these calls (admin /plugins counts its callbacks)"}
	resp, err := http.Get("http://" + s.AdminAddr() + "/plugins")
	if err != nil {
		row.Note = err.Error()
		return row
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`"calls":\s*(\d+)`).FindSubmatch(b)
	if m == nil || string(m[1]) == "0" {
		row.Note = "no calls counted: " + tail(string(b), 300)
		return row
	}
	row.Pass, row.Note = true, string(m[1])+" callbacks"
	return row
}
