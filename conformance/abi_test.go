package conformance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// References for the expected behaviour, as the rows cite them.
const (
	refSpec      = "proxy-wasm/spec abi-versions/v0.2.1/README.md"
	refSpec010   = "proxy-wasm/spec abi-versions/v0.1.0/README.md"
	refCPPH      = "proxy-wasm-cpp-host src/context.cc"
	refCPPHWasm  = "proxy-wasm-cpp-host src/wasm.cc"
	refCPPHExp   = "proxy-wasm-cpp-host src/exports.cc"
	refEnvoy     = "envoy source/extensions/common/wasm/context.cc"
	refEnvoyFF   = "envoy source/extensions/common/wasm/foreign.cc"
	refEnvoyHCM  = "envoy source/common/http/conn_manager_impl.cc (doDeferredStreamDestroy: log, then destroyFilters)"
	refEnvoyAttr = "envoy docs/root/intro/arch_overview/advanced/attributes.rst"
)

// guestWasm is the path of one of hostabi's raw-ABI test guests.
func guestWasm(name string) string {
	p, _ := filepath.Abs(filepath.Join("..", "hostabi", "testdata", "go", name, name+".wasm"))
	return p
}

// abiEnv is one case's running sluice, upstream and helpers.
type abiEnv struct {
	t    *testing.T
	s    *sluice
	base string // http://listener
	up   string
	grpc string
}

// plugin is a [[plugins]] table for a test guest. script is the plugin
// configuration (config_raw), which the rawabi guest runs as its script.
func plugin(name, guest, script, extra string) string {
	return fmt.Sprintf(`
[[plugins]]
name = %q
wasm = %q
config_raw = '''
%s
'''
vm = { call_timeout = "5s", instances = 1 }
%s
`, name, guestWasm(guest), script, extra)
}

// abiConfig is a listener, one route through the given plugins to the
// test upstream, a cluster for it and one for a gRPC server.
func abiConfig(up, grpcAddr, plugins, routePlugins string) string {
	return base + `
[[listeners]]
name = "l"
address = "127.0.0.1:0"
protocols = ["http1", "h2c"]

[[routes]]
name = "steer"
match = { path_prefix = "/steer" }
timeout = "10s"
plugins = ` + routePlugins + `
backends = [ { cluster = "grpc", headers = [ { name = "x-steer", exact = "grpc" } ] },
             { cluster = "up" } ]

[[routes]]
name = "abi"
timeout = "10s"
plugins = ` + routePlugins + `
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["` + up + `"]

[[clusters]]
name = "grpc"
protocol = "h2c"
endpoints = ["` + grpcAddr + `"]
` + plugins
}

func (e *abiEnv) logs(plugin string) []string { return e.s.pluginLogs(plugin) }

// waitLog waits up to 5s for a line of the plugin's that contains want.
func (e *abiEnv) waitLog(plugin, want string) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range e.logs(plugin) {
			if strings.Contains(l, want) {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no log line containing %q; got: %s", want, tail(strings.Join(e.logs(plugin), " ¶ "), 1500))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantLogs checks every want is (or soon is) a substring of some line.
func (e *abiEnv) wantLogs(plugin string, want ...string) error {
	for _, w := range want {
		if _, err := e.waitLog(plugin, w); err != nil {
			return err
		}
	}
	return nil
}

// ordered checks that lines containing each want appear in that order.
func (e *abiEnv) ordered(plugin string, want ...string) error {
	if err := e.wantLogs(plugin, want...); err != nil {
		return err
	}
	logs := e.logs(plugin)
	pos := 0
	for _, w := range want {
		found := false
		for ; pos < len(logs); pos++ {
			if strings.Contains(logs[pos], w) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%q is out of order; lines: %s", w, tail(strings.Join(logs, " ¶ "), 1500))
		}
	}
	return nil
}

type reply struct {
	status  int
	header  http.Header
	trailer http.Header
	body    string
}

func (e *abiEnv) do(req *http.Request) (reply, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{resp.StatusCode, resp.Header, resp.Trailer, string(b)}, nil
}

func (e *abiEnv) get(path string, hdr ...string) (reply, error) {
	req, _ := http.NewRequest("GET", e.base+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return e.do(req)
}

func (e *abiEnv) post(path, body string) (reply, error) {
	req, _ := http.NewRequest("POST", e.base+path, strings.NewReader(body))
	return e.do(req)
}

// raw sends a hand-written HTTP/1.1 request and returns the status line
// and the rest of the response.
func (e *abiEnv) raw(req string) (string, error) {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.base, "http://"), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + "\n" + string(b), nil
}

func expectStatus(r reply, err error, code int) error {
	if err != nil {
		return err
	}
	if r.status != code {
		return fmt.Errorf("status %d, want %d (body %q)", r.status, code, tail(r.body, 200))
	}
	return nil
}

// abiCase is one row: a config (plugins and the route's plugin list) and
// what to drive and check through the running sluice.
type abiCase struct {
	name, ref string
	// script is the rawabi plugin "p"'s script; plugins, when set,
	// replaces the whole [[plugins]] part (and route lists ["p"] unless
	// routePlugins is set).
	script       string
	extra        string
	plugins      string
	routePlugins string
	// startErr, when set, expects sluice to refuse the config with an
	// error containing it.
	startErr string
	run      func(e *abiEnv) error
}

func TestProxyWasmABI(t *testing.T) {
	report.Suite(SuiteABI, "Each case starts a real sluice whose route runs a raw-ABI test guest from hostabi/testdata/go (rawabi: ABI 0.2.1, a script of hostcalls per callback given as plugin configuration; hostile: misbehaves on purpose; abi010: ABI 0.1.0), drives requests through 127.0.0.1 sockets to a real upstream, and checks the client's response, what the upstream saw, the plugin's log lines and the admin /metrics page against Envoy's behaviour (the Reference column names the source). The status numbers are proxy_status_t: 0 Ok, 1 NotFound, 2 BadArgument, 6 InvalidMemoryAccess, 7 Empty, 8 CasMismatch, 12 Unimplemented.")
	up := startUpstream(t)
	grpcAddr := startGRPCServer(t)
	for _, c := range abiCases() {
		t.Run(c.name, func(t *testing.T) {
			row := Row{Case: c.name, Ref: c.ref}
			err := runABICase(t, c, up, grpcAddr)
			row.Pass = err == nil
			if err != nil {
				row.Note = err.Error()
			}
			record(t, SuiteABI, row)
		})
	}
}

func runABICase(t *testing.T, c abiCase, up, grpcAddr string) error {
	plugins, route := c.plugins, c.routePlugins
	if plugins == "" {
		plugins = plugin("p", "rawabi", c.script, c.extra)
	}
	if route == "" {
		route = `["p"]`
	}
	s, err := trySluice(t, abiConfig(up, grpcAddr, plugins, route))
	if c.startErr != "" {
		if err == nil {
			return fmt.Errorf("sluice started; want the config refused with %q", c.startErr)
		}
		if !strings.Contains(err.Error(), c.startErr) {
			return fmt.Errorf("refused with %q, want it to mention %q", err, c.startErr)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("starting sluice: %w", err)
	}
	e := &abiEnv{t: t, s: s, base: "http://" + s.ListenerAddr("l"), up: up, grpc: grpcAddr}
	return c.run(e)
}

// startGRPCServer runs grpc-go's interop TestService (h2c) in process for
// the grpc_call cases.
func startGRPCServer(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

var (
	statusRE = regexp.MustCompile(`status=(\d+)`)
	sizeRE   = regexp.MustCompile(`size=(\d+) eos=(\d)`)
)

// line returns the plugin's first log line starting with prefix.
func (e *abiEnv) line(plugin, prefix string) (string, error) {
	return e.waitLog(plugin, prefix)
}

// expectLine checks that a line starting with prefix exists and equals want.
func (e *abiEnv) expectLine(plugin, prefix, want string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got []string
		for _, l := range e.logs(plugin) {
			if strings.HasPrefix(l, prefix) {
				if l == want {
					return nil
				}
				got = append(got, l)
			}
		}
		if time.Now().After(deadline) {
			if len(got) == 0 {
				return fmt.Errorf("no log line %q", want)
			}
			return fmt.Errorf("log %q, want %q", tail(strings.Join(got, " ¶ "), 600), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func all(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func upstreamSaw(r reply, err error) (echoReply, error) {
	var e echoReply
	if err != nil {
		return e, err
	}
	if r.status != 200 {
		return e, fmt.Errorf("status %d (body %q)", r.status, tail(r.body, 200))
	}
	if err := jsonUnmarshal(r.body, &e); err != nil {
		return e, err
	}
	return e, nil
}

func levelOf(e *abiEnv, plugin, msg string) (zapcore.Level, bool) {
	for _, en := range e.s.logs.FilterField(zap.String("plugin", plugin)).All() {
		if en.Message == msg {
			return en.Level, true
		}
	}
	return 0, false
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func reqWith(method, url, body string, hdr ...string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, url, r)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return req
}

// ok200 checks for a 200.
func ok200(r reply, err error) error { return expectStatus(r, err, 200) }
