package conformance

import (
	"fmt"
	"strings"
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
	}
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
