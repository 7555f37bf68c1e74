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
