package hostabi

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// proxyFunc adapts a host function taking and returning uint32s to
// wazero's stack calling convention, and finds the calling instance.
type proxyFunc func(ctx context.Context, in *instance, a []uint64) abi.Status

// wrap makes f a host function for wazero. A hostcall made by start-up
// code other than proxy_log traps, as proxy-wasm-cpp-host's restricted
// callbacks do (WasmBase::startVm): the load fails with an error naming
// the call. proxy_log is also one of the few calls the guest's allocator
// may make (memory.go).
func wrap(name string, f proxyFunc) api.GoModuleFunction {
	return &hostcall{name: name, f: f, allowed: name == "proxy_log"}
}

// hostcall is a proxy_* host function as wazero calls it: its own
// api.GoModuleFunction rather than an api.GoModuleFunc closure, whose Call
// method is one more call per hostcall (about 20 instructions, twenty
// hostcalls a Kong request).
type hostcall struct {
	name    string
	f       proxyFunc
	allowed bool
}

func (h *hostcall) Call(ctx context.Context, _ api.Module, stack []uint64) {
	in := instOf(ctx)
	if (in.restricted || in.allocating) && !h.allowed {
		in.refuseHostcall(h.name)
	}
	stack[0] = uint64(h.f(ctx, in, stack))
}

// refuseHostcall traps a hostcall made where cpp-host restricts them:
// during start-up, or from the guest's allocator. The instance is broken
// with an error naming the call.
func (in *instance) refuseHostcall(name string) {
	var err error = &StartupHostcallError{Hostcall: name}
	if in.allocating {
		err = &AllocatorHostcallError{Hostcall: name}
	}
	if in.broken == nil {
		in.broken = err
	}
	panic(err)
}

// StartupHostcallError: the module called a hostcall during VM start-up
// (_initialize, main or _start) that proxy-wasm-cpp-host does not allow
// there; the plugin is refused.
type StartupHostcallError struct{ Hostcall string }

func (e *StartupHostcallError) Error() string {
	return e.Hostcall + " is not allowed during VM start-up (_initialize, main, _start): only proxy_log and WASI are; " +
		"call it from proxy_on_vm_start, proxy_on_configure or later"
}

func pf(name string, f proxyFunc, params ...string) hostFunc {
	return hostFunc{name: name, fn: wrap(name, f), params: i32s(len(params)), names: params,
		results: []api.ValueType{api.ValueTypeI32}}
}

// registerEnv registers every proxy_* host function of ABI 0.1.0, 0.2.0 and
// 0.2.1 in one "env" module: a guest imports only what its version has.
func registerEnv(ctx context.Context, rt wazero.Runtime) error {
	funcs := []hostFunc{
		// log.go
		pf("proxy_log", hcLog, "level", "message", "message_size"),
		pf("proxy_get_log_level", hcGetLogLevel, "return_level"),
		pf("proxy_get_current_time_nanoseconds", hcGetCurrentTime, "return_time"),
		pf("proxy_set_tick_period_milliseconds", hcSetTickPeriod, "period"),
		pf("proxy_set_effective_context", hcSetEffectiveContext, "context_id"),
		pf("proxy_done", hcDone),
		// buffers.go
		pf("proxy_get_buffer_bytes", hcGetBufferBytes, "buffer_type", "start", "max_size", "return_data", "return_size"),
		pf("proxy_set_buffer_bytes", hcSetBufferBytes, "buffer_type", "start", "size", "data", "data_size"),
		pf("proxy_get_buffer_status", hcGetBufferStatus, "buffer_type", "return_size", "return_flags"),
		pf("proxy_get_configuration", hcGetConfiguration, "return_data", "return_size"),
		// headers.go
		pf("proxy_get_header_map_pairs", hcGetHeaderMapPairs, "map_type", "return_data", "return_size"),
		pf("proxy_set_header_map_pairs", hcSetHeaderMapPairs, "map_type", "data", "size"),
		pf("proxy_get_header_map_size", hcGetHeaderMapSize, "map_type", "return_size"),
		pf("proxy_get_header_map_value", hcGetHeaderMapValue, "map_type", "key", "key_size", "return_value", "return_value_size"),
		pf("proxy_add_header_map_value", hcAddHeaderMapValue, "map_type", "key", "key_size", "value", "value_size"),
		pf("proxy_replace_header_map_value", hcReplaceHeaderMapValue, "map_type", "key", "key_size", "value", "value_size"),
		pf("proxy_remove_header_map_value", hcRemoveHeaderMapValue, "map_type", "key", "key_size"),
		// stream.go
		pf("proxy_continue_stream", hcContinueStream, "stream_type"),
		pf("proxy_close_stream", hcCloseStream, "stream_type"),
		pf("proxy_continue_request", hcContinueRequest),
		pf("proxy_continue_response", hcContinueResponse),
		pf("proxy_clear_route_cache", hcClearRouteCache),
		pf("proxy_send_local_response", hcSendLocalResponse, "status_code", "details", "details_size",
			"body", "body_size", "headers", "headers_size", "grpc_status"),
		pf("proxy_get_status", hcGetStatus, "return_code", "return_message", "return_message_size"),
		// http_call.go
		pf("proxy_http_call", hcHTTPCall, "upstream", "upstream_size", "headers", "headers_size",
			"body", "body_size", "trailers", "trailers_size", "timeout_ms", "return_call_id"),
		// grpc.go
		pf("proxy_grpc_call", hcGRPCCall, "upstream", "upstream_size", "service", "service_size",
			"method", "method_size", "initial_metadata", "initial_metadata_size", "message", "message_size",
			"timeout_ms", "return_call_id"),
		pf("proxy_grpc_stream", hcGRPCStream, "upstream", "upstream_size", "service", "service_size",
			"method", "method_size", "initial_metadata", "initial_metadata_size", "return_stream_id"),
		pf("proxy_grpc_send", hcGRPCSend, "stream_id", "message", "message_size", "end_stream"),
		pf("proxy_grpc_cancel", hcGRPCCancel, "call_id"),
		pf("proxy_grpc_close", hcGRPCClose, "call_id"),
		// shared_data.go
		pf("proxy_get_shared_data", hcGetSharedData, "key", "key_size", "return_value", "return_value_size", "return_cas"),
		pf("proxy_set_shared_data", hcSetSharedData, "key", "key_size", "value", "value_size", "cas"),
		// queues.go
		pf("proxy_register_shared_queue", hcRegisterSharedQueue, "name", "name_size", "return_queue_id"),
		pf("proxy_resolve_shared_queue", hcResolveSharedQueue, "vm_id", "vm_id_size", "name", "name_size", "return_queue_id"),
		pf("proxy_enqueue_shared_queue", hcEnqueueSharedQueue, "queue_id", "value", "value_size"),
		pf("proxy_dequeue_shared_queue", hcDequeueSharedQueue, "queue_id", "return_value", "return_value_size"),
		// metrics.go
		pf("proxy_define_metric", hcDefineMetric, "metric_type", "name", "name_size", "return_metric_id"),
		pf("proxy_get_metric", hcGetMetric, "metric_id", "return_value"),
		{name: "proxy_increment_metric", fn: wrap("proxy_increment_metric", hcIncrementMetric), names: []string{"metric_id", "offset"},
			params: []api.ValueType{api.ValueTypeI32, api.ValueTypeI64}, results: []api.ValueType{api.ValueTypeI32}},
		{name: "proxy_record_metric", fn: wrap("proxy_record_metric", hcRecordMetric), names: []string{"metric_id", "value"},
			params: []api.ValueType{api.ValueTypeI32, api.ValueTypeI64}, results: []api.ValueType{api.ValueTypeI32}},
		// properties.go
		pf("proxy_get_property", hcGetProperty, "path", "path_size", "return_value", "return_value_size"),
		pf("proxy_set_property", hcSetProperty, "path", "path_size", "value", "value_size"),
		// foreign.go
		pf("proxy_call_foreign_function", hcCallForeignFunction, "name", "name_size",
			"arguments", "arguments_size", "return_results", "return_results_size"),
	}
	funcs = append(funcs, emscriptenFuncs()...)
	return instantiateHost(ctx, rt, "env", funcs)
}

func u32(v uint64) uint32 { return uint32(v) }
