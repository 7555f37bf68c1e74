package main

import "strconv"

//go:wasmexport proxy_on_context_create
func onContextCreate(id, parent uint32) {
	if parent == 0 {
		roots[id] = id
		use(id)
		run("root_create", 0)
		return
	}
	roots[id] = parent
	use(id)
	lastStream = id
	run("context_create", 0)
}

//go:wasmexport proxy_on_vm_start
func onVMStart(root, size uint32) uint32 {
	use(root)
	parse(readConfig(6))
	return run("vm_start", 1)
}

//go:wasmexport proxy_on_configure
func onConfigure(root, size uint32) uint32 {
	use(root)
	parse(readConfig(7))
	return run("configure", 1)
}

func stream(name string, id uint32) uint32 {
	lastStream = id
	return run(name, 0)
}

//go:wasmexport proxy_on_request_headers
func onRequestHeaders(id, n, eos uint32) uint32 {
	use(id)
	cur = "request_headers"
	entry("n=" + strconv.Itoa(int(n)) + " eos=" + strconv.Itoa(int(eos)))
	return stream("request_headers", id)
}

//go:wasmexport proxy_on_request_body
func onRequestBody(id, size, eos uint32) uint32 {
	use(id)
	cur = "request_body"
	entry("size=" + strconv.Itoa(int(size)) + " eos=" + strconv.Itoa(int(eos)))
	return stream("request_body", id)
}

//go:wasmexport proxy_on_request_trailers
func onRequestTrailers(id, n uint32) uint32 {
	use(id)
	cur = "request_trailers"
	entry("n=" + strconv.Itoa(int(n)))
	return stream("request_trailers", id)
}

//go:wasmexport proxy_on_response_headers
func onResponseHeaders(id, n, eos uint32) uint32 {
	use(id)
	cur = "response_headers"
	entry("n=" + strconv.Itoa(int(n)) + " eos=" + strconv.Itoa(int(eos)))
	return stream("response_headers", id)
}

//go:wasmexport proxy_on_response_body
func onResponseBody(id, size, eos uint32) uint32 {
	use(id)
	cur = "response_body"
	entry("size=" + strconv.Itoa(int(size)) + " eos=" + strconv.Itoa(int(eos)))
	return stream("response_body", id)
}

//go:wasmexport proxy_on_response_trailers
func onResponseTrailers(id, n uint32) uint32 {
	use(id)
	cur = "response_trailers"
	entry("n=" + strconv.Itoa(int(n)))
	return stream("response_trailers", id)
}

//go:wasmexport proxy_on_log
func onLog(id uint32) {
	use(id)
	run("log", 0)
}

//go:wasmexport proxy_on_done
func onDone(id uint32) uint32 {
	use(id)
	cur = "done"
	entry("id=" + strconv.Itoa(int(id)))
	return run("done", 1)
}

//go:wasmexport proxy_on_delete
func onDelete(id uint32) {
	use(id)
	run("delete", 0)
	if roots[id] != id {
		delete(roots, id)
	}
}

//go:wasmexport proxy_on_tick
func onTick(root uint32) {
	use(root)
	run("tick", 0)
}

//go:wasmexport proxy_on_queue_ready
func onQueueReady(root, qid uint32) {
	use(root)
	cur = "queue_ready"
	lastQueue = qid
	entry("qid=" + strconv.Itoa(int(qid)))
	run("queue_ready", 0)
}

//go:wasmexport proxy_on_http_call_response
func onHTTPCallResponse(root, id, nh, bs, nt uint32) {
	use(root)
	cur = "http_call_response"
	entry("root=" + strconv.FormatBool(root == rootID) + " id=" + strconv.Itoa(int(id)) + " headers=" + strconv.Itoa(int(nh)) +
		" body=" + strconv.Itoa(int(bs)) + " trailers=" + strconv.Itoa(int(nt)))
	run("http_call_response", 0)
}

//go:wasmexport proxy_on_grpc_receive_initial_metadata
func onGRPCInitial(root, id, n uint32) {
	use(root)
	cur = "grpc_initial"
	entry("id=" + strconv.Itoa(int(id)) + " n=" + strconv.Itoa(int(n)))
	run("grpc_initial", 0)
}

//go:wasmexport proxy_on_grpc_receive
func onGRPCReceive(root, id, size uint32) {
	use(root)
	cur = "grpc_receive"
	entry("id=" + strconv.Itoa(int(id)) + " size=" + strconv.Itoa(int(size)))
	run("grpc_receive", 0)
}

//go:wasmexport proxy_on_grpc_receive_trailing_metadata
func onGRPCTrailing(root, id, n uint32) {
	use(root)
	cur = "grpc_trailing"
	entry("id=" + strconv.Itoa(int(id)) + " n=" + strconv.Itoa(int(n)))
	run("grpc_trailing", 0)
}

//go:wasmexport proxy_on_grpc_close
func onGRPCClose(root, id, code uint32) {
	use(root)
	cur = "grpc_close"
	entry("id=" + strconv.Itoa(int(id)) + " code=" + strconv.Itoa(int(code)))
	run("grpc_close", 0)
}

//go:wasmexport proxy_on_foreign_function
func onForeignFunction(id, fid, size uint32) {
	use(id)
	cur = "foreign"
	entry("ctx=" + strconv.Itoa(int(id)) + " fid=" + strconv.Itoa(int(fid)) + " size=" + strconv.Itoa(int(size)))
	if roots[id] != id {
		lastStream = id
	}
	run("foreign", 0)
}

//go:wasmexport proxy_on_new_connection
func onNewConnection(id uint32) uint32 {
	use(id)
	return stream("new_connection", id)
}

//go:wasmexport proxy_on_downstream_data
func onDownstreamData(id, size, eos uint32) uint32 {
	use(id)
	cur = "downstream_data"
	entry("size=" + strconv.Itoa(int(size)) + " eos=" + strconv.Itoa(int(eos)))
	return stream("downstream_data", id)
}

//go:wasmexport proxy_on_upstream_data
func onUpstreamData(id, size, eos uint32) uint32 {
	use(id)
	cur = "upstream_data"
	entry("size=" + strconv.Itoa(int(size)) + " eos=" + strconv.Itoa(int(eos)))
	return stream("upstream_data", id)
}

//go:wasmexport proxy_on_downstream_connection_close
func onDownstreamClose(id, peer uint32) {
	use(id)
	cur = "downstream_close"
	entry("peer=" + strconv.Itoa(int(peer)))
	run("downstream_close", 0)
}

//go:wasmexport proxy_on_upstream_connection_close
func onUpstreamClose(id, peer uint32) {
	use(id)
	cur = "upstream_close"
	entry("peer=" + strconv.Itoa(int(peer)))
	run("upstream_close", 0)
}
