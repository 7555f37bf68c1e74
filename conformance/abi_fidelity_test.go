package conformance

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fidelityCases are what third-party filters built for Envoy tripped over
// (calls at configure time, http_call's header checks, attribute spellings
// and the connection attributes of network filters, node metadata).
func fidelityCases() []abiCase {
	return []abiCase{
		{
			name: "http_call from proxy_on_vm_start and proxy_on_configure: dispatched, the replies come to the root context",
			ref:  refEnvoy + " (Context::httpCall from the root context; the cluster manager is up before plugins configure); " + refCPPHWasm + " (WasmBase::start: vm_start, then configure)",
			extra: `vm_config_raw = '''
vm_start: http_call up :method=GET,:path=/at-vm-start,:authority=up - 2000
'''`,
			script: `configure: http_call up :method=GET,:path=/at-configure,:authority=up - 2000
http_call_response: buf_get 4 0 40`,
			run: func(e *abiEnv) error {
				return all(e.wantLogs("p", "vm_start http_call: status=0 id=", "configure http_call: status=0 id=",
					`http_call_response buf_get: status=0 {"method":"GET","path":"/at-vm-start"`,
					`http_call_response buf_get: status=0 {"method":"GET","path":"/at-configure"`),
					e.noLog("p", "http_call_response root=false"))
			},
		},
		{
			name:   "grpc_call from proxy_on_configure: dispatched, initial metadata, message and close come to the root context",
			ref:    refEnvoy + " (Context::grpcCall from the root context; onGrpcReceive, onGrpcClose)",
			script: `configure: grpc_call grpc grpc.testing.TestService EmptyCall \e 2000`,
			run: func(e *abiEnv) error {
				return e.ordered("p", "configure grpc_call: status=0", "grpc_initial id=", "grpc_receive id=", "code=0")
			},
		},
		{
			name:   "http_call with an empty :authority is dispatched (Envoy checks that :method, :path and :authority are present, not their values)",
			ref:    refEnvoy + " (Context::httpCall: Path() == nullptr || Method() == nullptr || Host() == nullptr -> BadArgument)",
			script: "request_headers: http_call up :method=GET,:path=/empty-authority,:authority= - 2000\nhttp_call_response: buf_get 4 0 48",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/x")); err != nil {
					return err
				}
				return e.wantLogs("p", "request_headers http_call: status=0 id=", `http_call_response buf_get: status=0 {"method":"GET","path":"/empty-authority"`)
			},
		},
		{
			name: "http_call header list with repeated names: Envoy's inline headers (:path, x-forwarded-for, ...) comma-joined first value first, others kept as separate entries",
			ref:  "envoy envoy/http/header_map.h (addCopy: comma concatenation for predefined inline headers; INLINE_REQ_HEADERS); " + refEnvoy + " (Context::httpCall builds the message's headers with addCopy)",
			script: "request_headers: http_call up :method=GET,:path=/first,:path=/second,:authority=up,x-forwarded-for=10.0.0.1,x-forwarded-for=10.0.0.2,x-other=a,x-other=b - 2000 | ret 1\n" +
				"http_call_response: buf_get 4 0 4096 | effective | continue 0",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/x")); err != nil {
					return err
				}
				l, err := e.waitLog("p", "http_call_response buf_get: status=0 ")
				if err != nil {
					return err
				}
				var echo echoReply
				if err := jsonUnmarshal(strings.TrimPrefix(l, "http_call_response buf_get: status=0 "), &echo); err != nil {
					return fmt.Errorf("%v in %q", err, l)
				}
				if echo.Path != "/first,/second" {
					return fmt.Errorf("upstream saw :path %q, want \"/first,/second\"", echo.Path)
				}
				if got := echo.Header["X-Forwarded-For"]; len(got) != 1 || got[0] != "10.0.0.1,10.0.0.2" {
					return fmt.Errorf("upstream saw x-forwarded-for %q, want one entry \"10.0.0.1,10.0.0.2\"", got)
				}
				if got := echo.Header["X-Other"]; len(got) != 2 || got[0] != "a" || got[1] != "b" {
					return fmt.Errorf("upstream saw x-other %q, want two entries a, b", got)
				}
				return nil
			},
		},
		{
			name: "L4 (network filter) connection attributes as HTTP's: cluster_name, cluster_metadata, connection.id, destination/upstream address, connection.tls_version spelled TLSv1.2",
			ref:  refEnvoyAttr + " (connection and upstream attributes, xds.cluster_name, xds.cluster_metadata; tls_version is BoringSSL's SSL_get_version); " + refEnvoy + " (Context::FindValue serves them to network filters)",
			run:  runL4Attributes,
		},
		{
			name:   "route_name and cluster_name from the first request-header callback, re-resolved after the filter changes a header the route's backend choice reads",
			ref:    refEnvoyAttr + " (route_name, xds.cluster_name); envoy source/common/router/router.cc and Http::FilterManager (the route is resolved when a filter first asks; clearRouteCache after header changes)",
			script: "request_headers: prop_get route_name | prop_get cluster_name | prop_get xds/cluster_name | hdr_add 0 x-steer grpc | prop_get cluster_name | hdr_remove 0 x-steer | prop_get cluster_name",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/steer/x")); err != nil {
					return err
				}
				var got []string
				for _, l := range e.logs("p") {
					if strings.HasPrefix(l, "request_headers prop_get") {
						got = append(got, strings.TrimPrefix(l, "request_headers prop_get: "))
					}
				}
				want := []string{"status=0 steer", "status=0 up", "status=0 up", "status=0 grpc", "status=0 up"}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					return fmt.Errorf("the filter read %q, want %q", got, want)
				}
				return nil
			},
		},
		{
			name:   "connection.tls_version on an HTTPS stream is TLSv1.3 (BoringSSL's spelling), not TLS 1.3",
			ref:    refEnvoyAttr + " (connection.tls_version)",
			script: "request_headers: prop_get connection/tls_version | prop_get connection/requested_server_name",
			run:    runHTTPSTLSVersion,
		},
		{
			name:   "plain-text connection: connection.requested_server_name is \"\" and connection.mtls false (Envoy answers both without TLS); connection.tls_version is absent",
			ref:    refEnvoyAttr + " (connection attributes); envoy source/extensions/filters/common/expr/context.cc (ConnectionWrapper: requestedServerName always, tlsVersion only with an SSL connection)",
			script: "request_headers: prop_get connection/requested_server_name | prop_get connection/mtls | prop_get connection/tls_version",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/plain")); err != nil {
					return err
				}
				// The guest prints a NUL as "/": mtls is the one byte 0.
				var got []string
				for _, l := range e.logs("p") {
					if strings.HasPrefix(l, "request_headers prop_get") {
						got = append(got, l)
					}
				}
				want := []string{"request_headers prop_get: status=0 ", "request_headers prop_get: status=0 /", "request_headers prop_get: status=1 "}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					return fmt.Errorf("%q, want %q", got, want)
				}
				return nil
			},
		},
		{
			name:   "request.size of a chunked request (no content-length) at request_headers is 0, never -1",
			ref:    refEnvoyAttr + " (request.size: the content-length header if present, else the bytes received)",
			script: "request_headers: prop_geti request/size",
			run: func(e *abiEnv) error {
				out, err := e.raw("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
				if err != nil {
					return err
				}
				if !strings.HasPrefix(out, "200") {
					return fmt.Errorf("response %q", tail(out, 200))
				}
				return e.expectLine("p", "request_headers prop_geti", "request_headers prop_geti: status=0 0")
			},
		},
		{
			name: "metadata numbers are doubles (8 IEEE 754 bytes), as Envoy's protobuf Struct holds them",
			ref:  refEnvoyAttr + " (xds.route_metadata is a Metadata message: filter_metadata values are google.protobuf.Value); " + refEnvoy + " (serializeValue: kDouble as its 8 bytes)",
			run: func(e *abiEnv) error {
				s, err := trySluice(e.t, base+`
[[listeners]]
name = "l"
address = "127.0.0.1:0"

[[routes]]
name = "weighted"
plugins = ["p"]
backends = [ { cluster = "up" } ]
metadata = { filter_metadata = { acme = { weight = 3 } } }

[[clusters]]
name = "up"
endpoints = ["`+e.up+`"]
`+plugin("p", "rawabi", "request_headers: prop_geti xds/route_metadata/filter_metadata/acme/weight", ""))
				if err != nil {
					return err
				}
				e = &abiEnv{t: e.t, s: s, base: "http://" + s.ListenerAddr("l"), up: e.up}
				if err := ok200(e.get("/weighted")); err != nil {
					return err
				}
				// 3.0 as a float64 is 0x4008000000000000.
				return e.expectLine("p", "request_headers prop_geti", "request_headers prop_geti: status=0 4613937818241073152")
			},
		},
		{
			name: "node.id, node.cluster and node.metadata from [node], read from proxy_on_configure (root context) and from a stream",
			ref:  refEnvoy + " (Context::FindValue NODE: the bootstrap node's message, from the plugin's local info); " + refEnvoyAttr + " (xds.node)",
			plugins: plugin("p", "rawabi", `configure: prop_get node/id | prop_get node/cluster | prop_get node/metadata/REGION | prop_geti node/metadata/RACK
request_headers: prop_get xds/node/id`, "") + `
[node]
id = "edge-7"
cluster = "edge-fleet"
metadata = { REGION = "eu-west", RACK = 4 }
`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/node")); err != nil {
					return err
				}
				return e.ordered("p", "configure prop_get: status=0 edge-7", "configure prop_get: status=0 edge-fleet",
					"configure prop_get: status=0 eu-west", "configure prop_geti: status=0 4616189618054758400", "request_headers prop_get: status=0 edge-7")
			},
		},
		{
			name: "sidecar mode: Istio's node metadata (NAME, NAMESPACE, WORKLOAD_NAME, LABELS, MESH_ID, CLUSTER_ID, ISTIO_VERSION) and Istio's node.id / node.cluster filled by default",
			ref:  "istio pilot/cmd/pilot-agent (node metadata from ISTIO_META_* and the pod's variables; sidecar~IP~POD.NS~NS.svc.cluster.local); " + refEnvoy + " (Context::FindValue NODE)",
			run:  runSidecarNode,
		},
		{
			name:    "Emscripten's env imports (pthread_equal, emscripten_notify_memory_growth) are provided with cpp-host's behaviour",
			ref:     refCPPHExp + " (pthread_equal: left == right; emscripten_notify_memory_growth: nothing); " + refCPPHWasm + " (WasmBase::registerCallbacks)",
			plugins: "\n[[plugins]]\nname = \"p\"\nwasm = \"" + emscriptenModule(os.TempDir()) + "\"\n",
			run: func(e *abiEnv) error {
				return e.wantLogs("p", "pthread_equal(7,7)=1 pthread_equal(7,8)=0")
			},
		},
		{
			name: "gRPC stream to an unreachable upstream: empty initial metadata, the router's local reply (grpc-status 14, grpc-message) as trailing metadata, then close 14",
			ref: "envoy source/common/http/async_client_impl.h (sendLocalReply with is_grpc_request: trailers-only :status 200); " +
				"envoy source/common/grpc/async_client_impl.cc (AsyncStreamImpl::onHeaders: end_stream -> empty initial metadata, onTrailers -> trailing metadata, onRemoteClose)",
			// Nothing listens on port 1 of the loopback.
			extra: "[[clusters]]\nname = \"dead\"\nprotocol = \"h2c\"\nendpoints = [\"127.0.0.1:1\"]\n",
			script: "request_headers: grpc_stream dead grpc.testing.TestService FullDuplexCall\n" +
				"grpc_initial: hdr_pairs 4\ngrpc_trailing: hdr_pairs 5\ngrpc_close: status",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/g")); err != nil {
					return err
				}
				if _, err := e.waitLog("p", "grpc_close id=2 code=14"); err != nil {
					return err
				}
				const reason = "grpc-message=upstream connect error or disconnect/reset before headers. reset reason: connection failure"
				return all(e.ordered("p", "request_headers grpc_stream: status=0 id=2", "grpc_initial id=2 n=0", "grpc_initial hdr_pairs: status=0 ",
					"grpc_trailing id=2 n=4", "grpc_trailing hdr_pairs: status=0 :status=200,content-type=application/grpc,grpc-status=14,"+reason,
					"grpc_close id=2 code=14", "grpc_close status: status=0 code=14 upstream connect error"),
					e.expectLine("p", "grpc_initial hdr_pairs", "grpc_initial hdr_pairs: status=0 "))
			},
		},
		{
			name:    "hostcalls from the guest's allocator: proxy_log works, proxy_get_header_map_size traps and fails the stream",
			ref:     "proxy-wasm-cpp-host include/proxy-wasm/wasm.h (WasmBase::allocMemory: restricted callback, only proxy_log, fd_write, clock_time_get; poll_oneoff since PR #533)",
			plugins: "\n[[plugins]]\nname = \"p\"\nwasm = \"" + allocatorModule(os.TempDir()) + "\"\n",
			run: func(e *abiEnv) error {
				r, err := e.get("/a")
				if err != nil {
					return err
				}
				if r.status == http.StatusOK {
					return fmt.Errorf("status 200, want the stream failed by the allocator's trap")
				}
				if err := e.wantLogs("p", "allocator: proxy_log allowed"); err != nil {
					return err
				}
				if !logsMention(e, "proxy_get_header_map_size is not allowed in the guest's allocator") {
					return fmt.Errorf("no log names the refused hostcall")
				}
				return nil
			},
		},
	}
}

// logsMention reports whether a sluice log entry's message or a field of
// it contains s (a trap's cause travels as an error field).
func logsMention(e *abiEnv, s string) bool {
	for _, l := range e.s.logs.All() {
		if strings.Contains(l.Message, s) {
			return true
		}
		for _, f := range l.Context {
			if strings.Contains(f.String, s) {
				return true
			}
			if err, ok := f.Interface.(error); ok && strings.Contains(err.Error(), s) {
				return true
			}
		}
	}
	return false
}

// allocatorModule writes a hand-assembled proxy-wasm module whose
// allocator logs "allocator: proxy_log allowed" and then calls
// proxy_get_header_map_size, and whose proxy_on_request_headers reads
// :path (so the host calls the allocator).
func allocatorModule(dir string) string {
	msg, key := "allocator: proxy_log allowed", ":path"
	types := concat([]byte{5},
		[]byte{0x60, 3, wasmI32, wasmI32, wasmI32, 1, wasmI32}, // 0: (wasmI32, wasmI32, wasmI32) -> wasmI32
		[]byte{0x60, 2, wasmI32, wasmI32, 1, wasmI32},          // 1: (wasmI32, wasmI32) -> wasmI32
		[]byte{0x60, 0, 0},                   // 2: () -> ()
		[]byte{0x60, 1, wasmI32, 1, wasmI32}, // 3: (wasmI32) -> wasmI32
		[]byte{0x60, 5, wasmI32, wasmI32, wasmI32, wasmI32, wasmI32, 1, wasmI32}) // 4: (wasmI32 x5) -> wasmI32
	imports := concat([]byte{3},
		wasmName("env"), wasmName("proxy_log"), []byte{0, 0},
		wasmName("env"), wasmName("proxy_get_header_map_size"), []byte{0, 1},
		wasmName("env"), wasmName("proxy_get_header_map_value"), []byte{0, 4})
	funcs := []byte{3, 2, 3, 0} // abi marker, memory allocate, request headers (func 3, 4, 5)
	exports := concat([]byte{4},
		wasmName("memory"), []byte{2, 0},
		wasmName("proxy_abi_version_0_2_1"), []byte{0, 3},
		wasmName("proxy_on_memory_allocate"), []byte{0, 4},
		wasmName("proxy_on_request_headers"), []byte{0, 5})
	body := func(code ...byte) []byte { return append([]byte{byte(len(code) + 1), 0}, code...) }
	allocate := []byte{
		0x41, 2, 0x41, 0, 0x41, byte(len(msg)), 0x10, 0, 0x1a, // proxy_log(2, msg); drop
		0x41, 0, 0x41, 0xc0, 0x00, 0x10, 1, 0x1a, // proxy_get_header_map_size(0, 64); drop
		0x41, 0x80, 0x08, 0x0b, // return 1024
	}
	headers := []byte{
		0x41, 0, 0x41, byte(len(msg)), 0x41, byte(len(key)), 0x41, 0x80, 0x01, 0x41, 0x84, 0x01,
		0x10, 2, 0x1a, // proxy_get_header_map_value(0, ":path", 128, 132); drop
		0x41, 0, 0x0b, // Continue
	}
	code := concat([]byte{3}, body(0x0b), body(allocate...), body(headers...))
	data := concat([]byte{1, 0, 0x41, 0, 0x0b}, wasmName(msg+key))
	return writeModule(filepath.Join(dir, "allocator-hostcalls.wasm"), types, imports, funcs, exports, code, data)
}

func runSidecarNode(e *abiEnv) error {
	e.t.Setenv("POD_NAME", "reviews-v1-5d8f")
	e.t.Setenv("ISTIO_META_CLUSTER_ID", "east")
	script := "configure: prop_get node/metadata/NAME | prop_get node/metadata/NAMESPACE | prop_get node/metadata/WORKLOAD_NAME | " +
		"prop_get node/metadata/MESH_ID | prop_get node/metadata/CLUSTER_ID | prop_get node/metadata/ISTIO_VERSION | prop_get node/metadata/LABELS/app | prop_get node/id | prop_get node/cluster"
	s, err := trySluice(e.t, "mode = \"sidecar\"\n"+base+`
[sidecar]
app = "`+e.up+`"
inbound = "127.0.0.1:0"
outbound = "127.0.0.1:0"
peer_authentication = "disable"

[node.metadata]
LABELS = { app = "reviews", version = "v1" }
`+plugin("p", "rawabi", script, ""))
	if err != nil {
		return err
	}
	n := &abiEnv{t: e.t, s: s}
	want := []string{"status=0 reviews-v1-5d8f", "status=0 default", "status=0 reviews-v1-5d8f", "status=0 cluster.local", "status=0 east",
		"status=0 " + "1.", "status=0 reviews", "status=0 sidecar~", "status=0 reviews-v1-5d8f.default"}
	var got []string
	for _, l := range n.logs("p") {
		if strings.HasPrefix(l, "configure prop_get: ") {
			got = append(got, strings.TrimPrefix(l, "configure prop_get: "))
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d answers %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			return fmt.Errorf("answer %d %q, want it to start %q (all: %q)", i, got[i], want[i], got)
		}
	}
	if !strings.HasSuffix(got[7], "~reviews-v1-5d8f.default~default.svc.cluster.local") {
		return fmt.Errorf("node.id %q, want Istio's sidecar~IP~POD.NS~NS.svc.cluster.local", got[7])
	}
	return nil
}

func runL4Attributes(e *abiEnv) error {
	echo, err := tcpEcho(e)
	if err != nil {
		return err
	}
	p := newPKI(e.t)
	script := `new_connection: prop_get cluster_name | prop_get xds/cluster_name | prop_get cluster_metadata/filter_metadata/acme/zone | prop_geti connection/id | prop_get connection/tls_version | prop_get destination/address | prop_geti destination/port
downstream_data: prop_get upstream/address`
	s, err := trySluice(e.t, base+`
[[listeners]]
name = "tcp"
address = "127.0.0.1:0"
protocols = ["tcp"]
cluster = "echo"
plugins = ["p"]
tls = { cert = "`+p.CertFile+`", key = "`+p.KeyFile+`" }

[[clusters]]
name = "echo"
endpoints = ["`+echo+`"]
metadata = { filter_metadata = { acme = { zone = "z1" } } }
`+plugin("p", "rawabi", script, ""))
	if err != nil {
		return fmt.Errorf("starting sluice with a tcp listener: %w", err)
	}
	l4 := &abiEnv{t: e.t, s: s}
	addr := s.ListenerAddr("tcp")
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: p.Pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := echoRoundTrip(c, "ping", 4); err != nil {
		return err
	}
	if err := all(l4.expectLine("p", "new_connection prop_get: status=0 echo", "new_connection prop_get: status=0 echo"),
		l4.expectLine("p", "new_connection prop_get: status=0 z1", "new_connection prop_get: status=0 z1"),
		l4.expectLine("p", "new_connection prop_get: status=0 TLS", "new_connection prop_get: status=0 TLSv1.2"),
		l4.expectLine("p", "new_connection prop_get: status=0 127.0.0.1:", "new_connection prop_get: status=0 "+addr),
		l4.wantLogs("p", "downstream_data prop_get: status=0 "+echo)); err != nil {
		return err
	}
	// connection.id and destination.port are integers.
	var ids []string
	for _, l := range l4.logs("p") {
		if strings.HasPrefix(l, "new_connection prop_geti: ") {
			ids = append(ids, l)
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	if len(ids) != 2 || ids[0] == "new_connection prop_geti: status=0 0" || !strings.HasPrefix(ids[0], "new_connection prop_geti: status=0 ") || ids[1] != "new_connection prop_geti: status=0 "+port {
		return fmt.Errorf("connection.id and destination.port: %q, want a non-zero id and %s", ids, port)
	}
	for _, l := range l4.logs("p") {
		if strings.HasPrefix(l, "new_connection prop_get") && !strings.Contains(l, "status=0") {
			return fmt.Errorf("%q, want every attribute found", l)
		}
	}
	return nil
}

func runHTTPSTLSVersion(e *abiEnv) error {
	p := newPKI(e.t)
	s, err := trySluice(e.t, base+`
[[listeners]]
name = "tls"
address = "127.0.0.1:0"
protocols = ["http1", "h2"]
tls = { cert = "`+p.CertFile+`", key = "`+p.KeyFile+`" }

[[routes]]
name = "all"
plugins = ["p"]
backends = [ { cluster = "up" } ]

[[clusters]]
name = "up"
endpoints = ["`+e.up+`"]
`+plugin("p", "rawabi", "request_headers: prop_get connection/tls_version | prop_get connection/requested_server_name", ""))
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}}}
	_, port, _ := net.SplitHostPort(s.ListenerAddr("tls"))
	resp, err := c.Get("https://localhost:" + port + "/v")
	if err != nil {
		return err
	}
	resp.Body.Close()
	h := &abiEnv{t: e.t, s: s}
	return all(h.expectLine("p", "request_headers prop_get: status=0 TLS", "request_headers prop_get: status=0 TLSv1.3"),
		h.expectLine("p", "request_headers prop_get: status=0 local", "request_headers prop_get: status=0 localhost"))
}

// noLog checks that no line of the plugin's contains s.
func (e *abiEnv) noLog(plugin, s string) error {
	for _, l := range e.logs(plugin) {
		if strings.Contains(l, s) {
			return fmt.Errorf("log line %q", l)
		}
	}
	return nil
}

// emscriptenModule writes a hand-assembled proxy-wasm module that imports
// what an Emscripten build imports from env (pthread_equal,
// emscripten_notify_memory_growth) and, from proxy_on_configure, logs
// "pthread_equal(7,7)=1 pthread_equal(7,8)=0" when both answers are right
// (the message's length is 40 times pthread_equal(7,7) - pthread_equal(7,8)).
func emscriptenModule(dir string) string {
	msg := "pthread_equal(7,7)=1 pthread_equal(7,8)=0"
	types := concat([]byte{5},
		[]byte{0x60, 2, wasmI32, wasmI32, 1, wasmI32},          // 0: (wasmI32, wasmI32) -> wasmI32
		[]byte{0x60, 3, wasmI32, wasmI32, wasmI32, 1, wasmI32}, // 1: (wasmI32, wasmI32, wasmI32) -> wasmI32
		[]byte{0x60, 0, 0},                   // 2: () -> ()
		[]byte{0x60, 1, wasmI32, 0},          // 3: (wasmI32) -> ()
		[]byte{0x60, 1, wasmI32, 1, wasmI32}) // 4: (wasmI32) -> wasmI32
	imports := concat([]byte{3},
		wasmName("env"), wasmName("pthread_equal"), []byte{0, 0},
		wasmName("env"), wasmName("proxy_log"), []byte{0, 1},
		wasmName("env"), wasmName("emscripten_notify_memory_growth"), []byte{0, 3})
	funcs := []byte{3, 2, 4, 0} // abi marker, memory allocate, configure (func 3, 4, 5)
	exports := concat([]byte{4},
		wasmName("memory"), []byte{2, 0},
		wasmName("proxy_abi_version_0_2_1"), []byte{0, 3},
		wasmName("proxy_on_memory_allocate"), []byte{0, 4},
		wasmName("proxy_on_configure"), []byte{0, 5})
	body := func(code ...byte) []byte { return append([]byte{byte(len(code) + 1), 0}, code...) }
	configure := []byte{
		0x41, 0, 0x10, 2, // emscripten_notify_memory_growth(0)
		0x41, 2, 0x41, 0, // proxy_log(2, 0, ...
		0x41, 7, 0x41, 7, 0x10, 0, // pthread_equal(7, 7)
		0x41, 7, 0x41, 8, 0x10, 0, // pthread_equal(7, 8)
		0x6b, 0x41, byte(len(msg)), 0x6c, // (a - b) * len
		0x10, 1, 0x1a, // proxy_log(...); drop
		0x41, 1, 0x0b, // return 1
	}
	code := concat([]byte{3},
		body(0x0b),
		body(0x41, 0x80, 0x08, 0x0b), // 1024
		body(configure...))
	data := concat([]byte{1, 0, 0x41, 0, 0x0b}, wasmName(msg))
	return writeModule(filepath.Join(dir, "emscripten-imports.wasm"), types, imports, funcs, exports, code, data)
}

// Hand-assembly of the small modules above: a section (one-byte size), a
// name, concatenation.
const wasmI32 = 0x7f

func wasmSection(id byte, body ...byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
func wasmName(s string) []byte                 { return append([]byte{byte(len(s))}, s...) }
func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// writeModule writes a module of the given sections' contents, with one
// page of memory, to path and returns path.
func writeModule(path string, types, imports, funcs, exports, code, data []byte) string {
	mod := concat([]byte("\x00asm\x01\x00\x00\x00"),
		wasmSection(1, types...), wasmSection(2, imports...), wasmSection(3, funcs...),
		wasmSection(5, 1, 0, 1), wasmSection(7, exports...), wasmSection(10, code...), wasmSection(11, data...))
	os.WriteFile(path, mod, 0o644)
	return path
}
