package conformance

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// abiCases are the proxy-wasm rows, grouped as the ABI groups hostcalls.
func abiCases() []abiCase {
	var cs []abiCase
	cs = append(cs, lifecycleCases()...)
	cs = append(cs, headerCases()...)
	cs = append(cs, bodyCases()...)
	cs = append(cs, streamCases()...)
	cs = append(cs, callCases()...)
	cs = append(cs, lifecycleExtras()...)
	cs = append(cs, stateCases()...)
	cs = append(cs, miscCases()...)
	cs = append(cs, sandboxCases()...)
	for _, c := range moreCases() {
		if c.startErr == "ABI" {
			c.plugins = fmt.Sprintf("\n[[plugins]]\nname = \"p\"\nwasm = %q\n", noABIModule())
		}
		cs = append(cs, c)
	}
	cs = append(cs, l4Cases()...)
	cs = append(cs, abi010Cases()...)
	cs = append(cs, fidelityCases()...)
	return cs
}

func lifecycleCases() []abiCase {
	return []abiCase{
		{
			name: "proxy_on_vm_start then proxy_on_configure; VM and plugin configuration buffers (6, 7)",
			ref:  refCPPHWasm + " (WasmBase::start, startForTesting: vm_start before configure); " + refSpec,
			extra: `vm_config_raw = '''
vm_start: buf_get 6 0 8
'''`,
			script: "configure: buf_get 7 0 9",
			run: func(e *abiEnv) error {
				return e.ordered("p", "vm_start buf_get: status=0 vm_start", "configure buf_get: status=0 configure")
			},
		},
		{
			name:     "proxy_on_configure returning false refuses the plugin",
			ref:      refCPPH + " (ContextBase::onConfigure: false fails the plugin); " + refEnvoy,
			script:   "configure: ret 0",
			startErr: `"p"`,
		},
		{
			name:   "proxy_on_vm_start returning false refuses the plugin",
			ref:    refCPPHWasm + " (WasmBase::start: vm_start false is a failed VM)",
			extra:  "vm_config_raw = \"vm_start: ret 0\"",
			script: "",
			run:    nil, startErr: `"p"`,
		},
		{
			name: "HTTP stream callbacks in Envoy's order: context_create, request_headers, response_headers, response_body, log, done, delete",
			ref:  refCPPH + " (ContextBase::onCreate, onDone, onLog, onDelete); " + refEnvoyHCM,
			script: `context_create: log 2 ctx-created
log: log 2 on-log
delete: log 2 on-delete`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/order")); err != nil {
					return err
				}
				return e.ordered("p", "ctx-created", "request_headers n=", "response_headers n=", "response_body size=", "on-log", "done id=", "on-delete")
			},
		},
		{
			name: "proxy_on_request_headers: num_headers and end_of_stream=1 for a GET",
			ref:  refEnvoy + " (Context::decodeHeaders passes end_stream); " + refSpec,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/eos", "x-one", "1")); err != nil {
					return err
				}
				// :method :scheme :path :authority user-agent accept-encoding x-one
				l, err := e.line("p", "request_headers n=")
				if err != nil {
					return err
				}
				if !strings.HasSuffix(l, "eos=1") {
					return fmt.Errorf("%q, want eos=1", l)
				}
				return nil
			},
		},
		{
			name: "POST split across many chunks: request_headers eos=0, body callbacks' sizes add up, only the last has end_of_stream",
			ref:  refEnvoy + " (Context::decodeData: body size and end_stream per chunk)",
			run: func(e *abiEnv) error {
				body := strings.Repeat("0123456789", 20000) // 200 kB
				if err := ok200(e.post("/chunks", body)); err != nil {
					return err
				}
				if err := e.expectLine("p", "request_headers n=", "request_headers n=7 eos=0"); err != nil {
					// the header count depends on the client; eos is what matters
					if l, _ := e.line("p", "request_headers n="); !strings.HasSuffix(l, "eos=0") {
						return err
					}
				}
				total, eos, chunks := 0, 0, 0
				lastEOS := false
				for _, l := range e.logs("p") {
					if m := sizeRE.FindStringSubmatch(l); m != nil && strings.HasPrefix(l, "request_body ") {
						total += atoi(m[1])
						chunks++
						lastEOS = m[2] == "1"
						if lastEOS {
							eos++
						}
					}
				}
				if total != len(body) || eos != 1 || !lastEOS {
					return fmt.Errorf("%d chunks, %d bytes, %d with end_of_stream (last %v); want %d bytes and only the last with end_of_stream", chunks, total, eos, lastEOS, len(body))
				}
				return nil
			},
		},
		{
			name:   "request trailers (HTTP/1.1 chunked): proxy_on_request_trailers, body without end_of_stream, trailer map (1) readable",
			ref:    refEnvoy + " (Context::decodeTrailers; getHeaderMap RequestTrailers)",
			script: "request_trailers: hdr_get 1 x-client-trailer",
			run: func(e *abiEnv) error {
				out, err := e.raw("POST /trailers-in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: x-client-trailer\r\n\r\n5\r\nhello\r\n0\r\nx-client-trailer: sent\r\n\r\n")
				if err != nil {
					return err
				}
				if !strings.HasPrefix(out, "200") {
					return fmt.Errorf("response %q", tail(out, 200))
				}
				return all(e.expectLine("p", "request_trailers n=", "request_trailers n=1"),
					e.expectLine("p", "request_trailers hdr_get", "request_trailers hdr_get: status=0 sent"),
					e.expectLine("p", "request_body size=", "request_body size=5 eos=0"))
			},
		},
		{
			name:   "trailers-only request body (HTTP/1.1, zero-length chunked body then a trailer): headers eos=0, then trailers",
			ref:    refEnvoy + " (Context::decodeHeaders end_stream=false, decodeTrailers)",
			script: "request_trailers: hdr_get 1 x-t",
			run: func(e *abiEnv) error {
				out, err := e.raw("POST /trailers-only HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx-t: v\r\n\r\n")
				if err != nil {
					return err
				}
				if !strings.HasPrefix(out, "200") {
					return fmt.Errorf("response %q", tail(out, 200))
				}
				l, err := e.line("p", "request_headers n=")
				if err != nil {
					return err
				}
				if !strings.HasSuffix(l, "eos=0") {
					return fmt.Errorf("%q, want end_of_stream=0 (trailers follow)", l)
				}
				return all(e.expectLine("p", "request_trailers n=", "request_trailers n=1"),
					e.expectLine("p", "request_trailers hdr_get", "request_trailers hdr_get: status=0 v"))
			},
		},
		{
			name:   "response trailers: proxy_on_response_trailers, trailer map (3) read and added to",
			ref:    refEnvoy + " (Context::encodeTrailers; getHeaderMap ResponseTrailers)",
			script: "response_trailers: hdr_get 3 x-upstream-trailer | hdr_add 3 x-filter-trailer added",
			run: func(e *abiEnv) error {
				r, err := e.get("/trailers")
				if err != nil {
					return err
				}
				if r.body != "body before trailers" || r.trailer.Get("X-Upstream-Trailer") != "done" || r.trailer.Get("X-Filter-Trailer") != "added" {
					return fmt.Errorf("body %q trailers %v; want upstream's and the filter's trailers", r.body, r.trailer)
				}
				return all(e.expectLine("p", "response_trailers n=", "response_trailers n=1"),
					e.expectLine("p", "response_trailers hdr_get", "response_trailers hdr_get: status=0 done"))
			},
		},
	}
}

func headerCases() []abiCase {
	return []abiCase{
		{
			name:   "get_header_map_value: pseudo-headers and a missing key (NotFound since 0.2.0)",
			ref:    refEnvoy + " (Context::getHeaderMapValue); " + refSpec,
			script: "request_headers: hdr_get 0 :path | hdr_get 0 :method | hdr_get 0 :authority | hdr_get 0 x-missing",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/p?q=1")); err != nil {
					return err
				}
				logs := strings.Join(e.logs("p"), "\n")
				for _, w := range []string{"request_headers hdr_get: status=0 /p?q=1", "request_headers hdr_get: status=0 GET",
					"request_headers hdr_get: status=0 " + strings.TrimPrefix(e.base, "http://"), "request_headers hdr_get: status=1 "} {
					if !strings.Contains(logs, w+"\n") && !strings.HasSuffix(logs, w) {
						return fmt.Errorf("missing %q in %s", w, tail(logs, 800))
					}
				}
				return nil
			},
		},
		{
			name:   "add_header_map_value appends (a second value for an existing key)",
			ref:    refEnvoy + " (Context::addHeaderMapValue: addCopy)",
			script: "request_headers: hdr_add 0 x-added yes | hdr_add 0 x-dup second",
			run: func(e *abiEnv) error {
				u, err := upstreamSaw(e.get("/add", "x-dup", "first"))
				if err != nil {
					return err
				}
				dup := strings.Join(u.Header["X-Dup"], ",")
				if strings.Join(u.Header["X-Added"], ",") != "yes" || dup != "first,second" {
					return fmt.Errorf("upstream saw x-added %v x-dup %v; want yes and first,second", u.Header["X-Added"], u.Header["X-Dup"])
				}
				return e.expectLine("p", "request_headers hdr_add", "request_headers hdr_add: status=0")
			},
		},
		{
			name:   "replace_header_map_value replaces every value, and adds an absent key",
			ref:    refEnvoy + " (Context::replaceHeaderMapValue: setCopy)",
			script: "request_headers: hdr_replace 0 x-dup only | hdr_replace 0 x-new created",
			run: func(e *abiEnv) error {
				req := reqWith("GET", e.base+"/replace", "", "x-dup", "a", "x-dup", "b")
				u, err := upstreamSaw(e.do(req))
				if err != nil {
					return err
				}
				if strings.Join(u.Header["X-Dup"], ",") != "only" || strings.Join(u.Header["X-New"], ",") != "created" {
					return fmt.Errorf("upstream saw x-dup %v x-new %v", u.Header["X-Dup"], u.Header["X-New"])
				}
				return nil
			},
		},
		{
			name:   "remove_header_map_value removes; Ok for an absent key",
			ref:    refEnvoy + " (Context::removeHeaderMapValue); " + refSpec,
			script: "request_headers: hdr_remove 0 x-remove-me | hdr_remove 0 x-never-there",
			run: func(e *abiEnv) error {
				u, err := upstreamSaw(e.get("/remove", "x-remove-me", "1"))
				if err != nil {
					return err
				}
				if u.Header["X-Remove-Me"] != nil {
					return fmt.Errorf("upstream still saw x-remove-me")
				}
				for _, l := range e.logs("p") {
					if strings.HasPrefix(l, "request_headers hdr_remove") && l != "request_headers hdr_remove: status=0" {
						return fmt.Errorf("%q, want status=0", l)
					}
				}
				return nil
			},
		},
		{
			name:   "get_header_map_pairs: every request header with pseudo-headers, lower-case keys",
			ref:    refEnvoy + " (Context::getHeaderMapPairs); " + refCPPHExp + " (pairs serialisation)",
			script: "request_headers: hdr_pairs 0",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/pairs", "X-A", "1")); err != nil {
					return err
				}
				l, err := e.line("p", "request_headers hdr_pairs")
				if err != nil {
					return err
				}
				for _, w := range []string{":method=GET", ":path=/pairs", ":scheme=http", "x-a=1", "user-agent="} {
					if !strings.Contains(l, w) {
						return fmt.Errorf("%q lacks %q", l, w)
					}
				}
				return nil
			},
		},
		{
			name:   "set_header_map_pairs replaces the whole response header map (:status included)",
			ref:    refEnvoy + " (Context::setHeaderMapPairs: remove all, then add)",
			script: "response_headers: hdr_setpairs 2 :status=201,x-only=yes",
			run: func(e *abiEnv) error {
				r, err := e.get("/setpairs")
				if err != nil {
					return err
				}
				if r.status != 201 || r.header.Get("X-Only") != "yes" || r.header.Get("X-Upstream") != "" {
					return fmt.Errorf("status %d headers %v; want 201 with only x-only", r.status, r.header)
				}
				return nil
			},
		},
		{
			name:   "get_header_map_size",
			ref:    refEnvoy + " (Context::getHeaderMapSize: the map's byte size)",
			script: "request_headers: hdr_size 0",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/size")); err != nil {
					return err
				}
				l, err := e.line("p", "request_headers hdr_size")
				if err != nil {
					return err
				}
				if !strings.HasPrefix(l, "request_headers hdr_size: status=0 size=") || strings.HasSuffix(l, "size=0") {
					return fmt.Errorf("%q, want status=0 and a non-zero size", l)
				}
				return nil
			},
		},
		{
			name:   "response header map (2): add a header the client sees, read :status",
			ref:    refEnvoy + " (Context::encodeHeaders; getHeaderMap ResponseHeaders)",
			script: "response_headers: hdr_add 2 x-resp added | hdr_get 2 :status",
			run: func(e *abiEnv) error {
				r, err := e.get("/resp")
				if err != nil {
					return err
				}
				if r.header.Get("X-Resp") != "added" || r.header.Get("X-Upstream") != "yes" {
					return fmt.Errorf("client saw %v", r.header)
				}
				return e.expectLine("p", "response_headers hdr_get", "response_headers hdr_get: status=0 200")
			},
		},
		{
			name:   "edge: empty header value is present (Ok, empty), not NotFound",
			ref:    refEnvoy + " (Context::getHeaderMapValue)",
			script: "request_headers: hdr_get 0 x-empty",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/empty", "x-empty", "")); err != nil {
					return err
				}
				return e.expectLine("p", "request_headers hdr_get", "request_headers hdr_get: status=0 ")
			},
		},
		{
			name:   "edge: 32 KiB header value read whole and forwarded intact",
			ref:    refEnvoy + " (Context::getHeaderMapValue); " + refCPPH,
			script: "request_headers: hdr_get 0 x-huge",
			run: func(e *abiEnv) error {
				v := strings.Repeat("h", 32<<10)
				u, err := upstreamSaw(e.get("/huge", "x-huge", v))
				if err != nil {
					return err
				}
				if strings.Join(u.Header["X-Huge"], "") != v {
					return fmt.Errorf("upstream saw %d bytes of x-huge", len(strings.Join(u.Header["X-Huge"], "")))
				}
				return e.expectLine("p", "request_headers hdr_get", "request_headers hdr_get: status=0 "+v)
			},
		},
		{
			name:   "edge: binary (obs-text, 0x80-0xff) header value returned byte for byte",
			ref:    refEnvoy + " (header values are bytes, not UTF-8)",
			script: "request_headers: hdr_get 0 x-bin",
			run: func(e *abiEnv) error {
				v := "\x80\xfe\xffa\xc3"
				u, err := upstreamSaw(e.get("/bin", "x-bin", v))
				if err != nil {
					return err
				}
				if u.BinHex != fmt.Sprintf("%x", v) {
					return fmt.Errorf("upstream saw x-bin %s (hex), want %x", u.BinHex, v)
				}
				return e.expectLine("p", "request_headers hdr_get", "request_headers hdr_get: status=0 "+v)
			},
		},
		{
			name:   "edge: 200 request headers all in get_header_map_pairs",
			ref:    refEnvoy + " (Context::getHeaderMapPairs); proxy-wasm-cpp-host include/proxy-wasm/limits.h (1024 pairs)",
			script: "request_headers: hdr_pairs 0",
			run: func(e *abiEnv) error {
				var hdr []string
				for i := 0; i < 200; i++ {
					hdr = append(hdr, fmt.Sprintf("x-h-%03d", i), fmt.Sprint(i))
				}
				if err := ok200(e.get("/many", hdr...)); err != nil {
					return err
				}
				l, err := e.line("p", "request_headers hdr_pairs")
				if err != nil {
					return err
				}
				if n := strings.Count(l, "x-h-"); n != 200 {
					return fmt.Errorf("%d of the 200 headers in the pairs", n)
				}
				return nil
			},
		},
		{
			name:   "wrong context: header map access from proxy_on_configure (root context) is BadArgument",
			ref:    refEnvoy + " (Context::getHeaderMapValue: no map in this context -> BadArgument)",
			script: "configure: hdr_get 0 :path | hdr_add 0 x k",
			run: func(e *abiEnv) error {
				return all(e.expectLine("p", "configure hdr_get", "configure hdr_get: status=2 "),
					e.expectLine("p", "configure hdr_add", "configure hdr_add: status=2"))
			},
		},
	}
}

func bodyCases() []abiCase {
	return []abiCase{
		{
			name:   "get_buffer_bytes on the request body (0)",
			ref:    refEnvoy + " (Context::getBuffer HttpRequestBody)",
			script: "request_body: buf_get 0 0 1000",
			run: func(e *abiEnv) error {
				if err := ok200(e.post("/body", "hello body")); err != nil {
					return err
				}
				return e.wantLogs("p", "request_body buf_get: status=0 hello body")
			},
		},
		{
			name:   "set_buffer_bytes replaces the request body; the upstream gets it with a matching length",
			ref:    refEnvoy + " (Context::setBuffer -> Buffer::setBuffer; content-length follows)",
			script: "request_body: buf_set 0 0 1000 replaced",
			run: func(e *abiEnv) error {
				u, err := upstreamSaw(e.post("/body", "original body"))
				if err != nil {
					return err
				}
				if u.Body != "replaced" {
					return fmt.Errorf("upstream saw body %q, want \"replaced\"", u.Body)
				}
				return nil
			},
		},
		{
			name:   "set_buffer_bytes with start=0 size=0 prepends to the request body",
			ref:    refEnvoy + " (Buffer::copyFrom: start 0, length 0 prepends)",
			script: "request_body: buf_set 0 0 0 pre-",
			run: func(e *abiEnv) error {
				u, err := upstreamSaw(e.post("/body", "body"))
				if err != nil {
					return err
				}
				if u.Body != "pre-body" {
					return fmt.Errorf("upstream saw body %q, want \"pre-body\"", u.Body)
				}
				return nil
			},
		},
		{
			name:   "get/set_buffer_bytes on the response body (1)",
			ref:    refEnvoy + " (Context::getBuffer HttpResponseBody)",
			script: "response_body: buf_get 1 0 7 | buf_set 1 0 1000000 new-body",
			run: func(e *abiEnv) error {
				r, err := e.get("/status/200")
				if err != nil {
					return err
				}
				if r.body != "new-body" {
					return fmt.Errorf("client got body %q, want \"new-body\"", r.body)
				}
				return e.wantLogs("p", "response_body buf_get: status=0 status ")
			},
		},
		{
			name:   "get_buffer_status on the request body",
			ref:    refSpec + " (proxy_get_buffer_status)",
			script: "request_body: buf_status 0",
			run: func(e *abiEnv) error {
				if err := ok200(e.post("/body", "12345")); err != nil {
					return err
				}
				return e.wantLogs("p", "request_body buf_status: status=0 size=5")
			},
		},
		{
			name:   "edge: get_buffer_bytes with start past the end returns no bytes; a buffer type past the last one is BadArgument",
			ref:    refCPPHExp + " (get_buffer_bytes: type > WasmBufferType::MAX -> BadArgument; a buffer the context lacks -> NotFound)",
			script: "request_body: buf_get 0 100 10 | buf_get 99 0 10",
			run: func(e *abiEnv) error {
				if err := ok200(e.post("/body", "short")); err != nil {
					return err
				}
				logs := e.logs("p")
				var got []string
				for _, l := range logs {
					if strings.HasPrefix(l, "request_body buf_get") {
						got = append(got, l)
					}
				}
				past := len(got) > 0 && (got[0] == "request_body buf_get: status=0 " || got[0] == "request_body buf_get: status=2 ")
				if len(got) < 2 || !past || got[1] != "request_body buf_get: status=2 " {
					return fmt.Errorf("got %q", got)
				}
				return nil
			},
		},
	}
}

func streamCases() []abiCase {
	return []abiCase{
		{
			name:   "send_local_response from request_headers: status, body, extra headers; the upstream is not called",
			ref:    refEnvoy + " (Context::sendLocalResponse -> sendLocalReply)",
			script: `request_headers: local 403 denied-body some_details x-local=yes -1 | ret 1`,
			run: func(e *abiEnv) error {
				r, err := e.get("/deny")
				if err != nil {
					return err
				}
				if r.status != 403 || r.body != "denied-body" || r.header.Get("X-Local") != "yes" || r.header.Get("X-Upstream") != "" {
					return fmt.Errorf("status %d body %q headers %v", r.status, r.body, r.header)
				}
				return nil
			},
		},
		{
			name:   "send_local_response from request_headers passes back through the filter's own on_response_headers",
			ref:    "envoy source/common/http/filter_manager.cc (sendLocalReplyViaFilterChain: the reply goes through the encoder filters); " + refEnvoy + " (Context::encodeHeaders skips only a context the request never created)",
			script: "request_headers: local 403 denied-body some_details x-local=yes -1 | ret 1\nresponse_headers: hdr_get 2 :status | hdr_add 2 x-encoded yes",
			run: func(e *abiEnv) error {
				r, err := e.get("/deny-encoded")
				if err != nil {
					return err
				}
				if r.status != 403 || r.body != "denied-body" || r.header.Get("X-Local") != "yes" || r.header.Get("X-Encoded") != "yes" {
					return fmt.Errorf("status %d body %q headers %v", r.status, r.body, r.header)
				}
				return e.wantLogs("p", "response_headers hdr_get: status=0 403")
			},
		},
		{
			name:   "send_local_response with a gRPC status answers a gRPC request with grpc-status",
			ref:    refEnvoy + " (Context::sendLocalResponse: grpc_status -> sendLocalReply for gRPC)",
			script: `request_headers: local 200 \e details - 7 | ret 1`,
			run: func(e *abiEnv) error {
				req := reqWith("POST", e.base+"/grpc.Svc/Method", "\x00\x00\x00\x00\x00", "content-type", "application/grpc", "te", "trailers")
				r, err := e.do(req)
				if err != nil {
					return err
				}
				gs := r.header.Get("Grpc-Status") + r.trailer.Get("Grpc-Status")
				if r.status != 200 || gs != "7" {
					return fmt.Errorf("status %d grpc-status %q (headers %v trailers %v); want 200 and 7", r.status, gs, r.header, r.trailer)
				}
				return nil
			},
		},
		{
			name:   "send_local_response from response_headers replaces the upstream's response",
			ref:    refEnvoy + " (Context::sendLocalResponse in the encode path)",
			script: `response_headers: local 502 replaced-response details - -1 | ret 1`,
			run: func(e *abiEnv) error {
				r, err := e.get("/replace-response")
				if err != nil {
					return err
				}
				if r.status != 502 || r.body != "replaced-response" {
					return fmt.Errorf("status %d body %q", r.status, r.body)
				}
				return nil
			},
		},
		{
			name: "Pause in request_headers, resumed from proxy_on_tick with set_effective_context + continue_stream(HTTP_REQUEST)",
			ref:  refCPPH + " (ContextBase::setEffectiveContext, continueStream); " + refEnvoy + " (Context::continueStream)",
			script: `request_headers: tick 30 | ret 1
tick: effective | continue 0 | tick 0`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/paused")); err != nil {
					return err
				}
				return e.wantLogs("p", "tick effective: status=0", "tick continue: status=0")
			},
		},
		{
			name: "Pause in response_headers, resumed from proxy_on_tick with continue_stream(HTTP_RESPONSE)",
			ref:  refEnvoy + " (Context::continueStream HttpResponse -> continueEncoding)",
			script: `response_headers: tick 30 | ret 1
tick: effective | continue 1 | tick 0`,
			run: func(e *abiEnv) error {
				r, err := e.get("/paused-response")
				if err := expectStatus(r, err, 200); err != nil {
					return err
				}
				if r.header.Get("X-Upstream") != "yes" {
					return fmt.Errorf("headers %v", r.header)
				}
				return e.wantLogs("p", "tick continue: status=0")
			},
		},
		{
			name:   "continue_stream with an unknown stream type is BadArgument",
			ref:    refEnvoy + " (Context::continueStream: default -> BadArgument)",
			script: `request_headers: continue 9`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/c9")); err != nil {
					return err
				}
				return e.expectLine("p", "request_headers continue", "request_headers continue: status=2")
			},
		},
		{
			name:   "close_stream(HTTP_REQUEST) from request_headers resets the stream: the client gets no response from the upstream",
			ref:    refEnvoy + " (Context::closeStream HttpRequest -> resetStream)",
			script: `request_headers: close 0 | ret 1`,
			run: func(e *abiEnv) error {
				r, err := e.get("/close")
				if err == nil && r.header.Get("X-Upstream") != "" {
					return fmt.Errorf("status %d from the upstream; want a reset", r.status)
				}
				if err == nil && r.status < 500 {
					return fmt.Errorf("status %d; want a reset (or a 5xx)", r.status)
				}
				return e.expectLine("p", "request_headers close", "request_headers close: status=0")
			},
		},
		{
			name:   "set_effective_context with an unknown context id is BadArgument",
			ref:    refCPPH + " (ContextBase::setEffectiveContext: unknown id -> BadArgument)",
			script: `request_headers: effective 987654`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/eff")); err != nil {
					return err
				}
				return e.expectLine("p", "request_headers effective", "request_headers effective: status=2")
			},
		},
	}
}

func callCases() []abiCase {
	return []abiCase{
		{
			name: "http_call from request_headers: reply to the root context (headers 6, body 4), stream resumed",
			ref:  refEnvoy + " (Context::httpCall; onHttpCallSuccess sets the status to Ok for proxy_get_status and calls proxy_on_http_call_response; buffer HttpCallResponseBody)",
			script: `request_headers: http_call up :method=GET,:path=/called,:authority=up - 2000 | ret 1
http_call_response: hdr_get 6 x-upstream | buf_get 4 0 32 | status | effective | continue 0`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/caller")); err != nil {
					return err
				}
				return all(e.wantLogs("p", "request_headers http_call: status=0 id=", "http_call_response root=true id=",
					"http_call_response hdr_get: status=0 yes", `http_call_response buf_get: status=0 {"method":"GET","path":"/called"`,
					"http_call_response status: status=0 code=0 ", "http_call_response continue: status=0"))
			},
		},
		{
			name:   "http_call to an unknown cluster is BadArgument",
			ref:    refEnvoy + " (Context::httpCall: cluster not found -> BadArgument)",
			script: `request_headers: http_call nope :method=GET,:path=/,:authority=x - 1000`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/x")); err != nil {
					return err
				}
				return e.expectLine("p", "request_headers http_call", "request_headers http_call: status=2 id=0")
			},
		},
		{
			name:   "http_call without :path (or :method, :authority) is BadArgument",
			ref:    refEnvoy + " (Context::httpCall: missing required headers -> BadArgument)",
			script: `request_headers: http_call up :method=GET,:authority=x - 1000`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/x")); err != nil {
					return err
				}
				return e.expectLine("p", "request_headers http_call", "request_headers http_call: status=2 id=0")
			},
		},
		{
			name:   "http_call timeout: proxy_on_http_call_response with num_headers=0",
			ref:    refEnvoy + " (Context::onHttpCallFailure -> on_http_call_response with zero headers)",
			script: `request_headers: http_call up :method=GET,:path=/sleep?ms=3000,:authority=up - 200`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/x")); err != nil {
					return err
				}
				return e.wantLogs("p", "headers=0 body=0 trailers=0")
			},
		},
		{
			name: "http_call from proxy_on_tick (root context) gets its reply on the root context",
			ref:  refEnvoy + " (Context::httpCall from a root context); rust-sdk PR #385",
			script: `configure: tick 20
tick: tick 0 | http_call up :method=GET,:path=/from-tick,:authority=up - 2000`,
			run: func(e *abiEnv) error {
				return e.wantLogs("p", "tick http_call: status=0", "http_call_response root=true", "body=")
			},
		},
		{
			name:   "grpc_call: initial metadata, message, trailing metadata and close(0) callbacks",
			ref:    refEnvoy + " (Context::grpcCall, onGrpcReceiveInitialMetadata, onGrpcReceive, onGrpcReceiveTrailingMetadata, onGrpcClose)",
			script: `request_headers: grpc_call grpc grpc.testing.TestService EmptyCall \e 2000`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/g")); err != nil {
					return err
				}
				return e.ordered("p", "request_headers grpc_call: status=0", "grpc_initial id=", "grpc_receive id=", "grpc_trailing id=", "code=0")
			},
		},
		{
			name:   "grpc_call to an unimplemented method closes with status 12",
			ref:    refEnvoy + " (Context::onGrpcClose with the call's grpc-status)",
			script: `request_headers: grpc_call grpc grpc.testing.TestService NoSuchMethod \e 2000`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/g")); err != nil {
					return err
				}
				return e.wantLogs("p", "code=12")
			},
		},
		{
			name:   "grpc_call to an unknown cluster is BadArgument",
			ref:    refEnvoy + " (Context::grpcCall: cluster not found -> BadArgument/ParseFailure)",
			script: `request_headers: grpc_call nope svc m \e 1000`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/g")); err != nil {
					return err
				}
				l, err := e.line("p", "request_headers grpc_call")
				if err != nil {
					return err
				}
				if strings.HasPrefix(l, "request_headers grpc_call: status=0") {
					return fmt.Errorf("%q, want an error status", l)
				}
				return nil
			},
		},
		{
			name: "grpc_stream opens a gRPC stream",
			ref:  refEnvoy + " (Context::grpcStream, grpcSend, onGrpcCloseWrapper; stream tokens even)",
			// A StreamingOutputCallRequest asking for one 3-byte payload
			// (response_parameters {size: 3}), sent with end_of_stream: the
			// interop server answers with initial metadata, one message
			// (payload {body: 3 bytes}: 7 bytes), then grpc-status 0.
			script: "request_headers: grpc_stream grpc grpc.testing.TestService FullDuplexCall | grpc_send_hex 2 12020803 1 | grpc_send 2 more 0\n" +
				"grpc_initial: hdr_get 4 content-type\ngrpc_receive: buf_status 5\ngrpc_trailing: hdr_get 5 grpc-status\ngrpc_close: status",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/g")); err != nil {
					return err
				}
				if _, err := e.waitLog("p", "grpc_close id=2 code=0"); err != nil {
					return err
				}
				return e.ordered("p", "request_headers grpc_stream: status=0 id=2", "request_headers grpc_send_hex: status=0",
					"request_headers grpc_send: status=2", "grpc_initial hdr_get: status=0 application/grpc",
					"grpc_receive id=2 size=7", "grpc_receive buf_status: status=0 size=7 flags=0", "grpc_trailing hdr_get: status=0 0", "grpc_close id=2 code=0", "grpc_close status: status=0 code=0 ")
			},
		},
		{
			name: "proxy_on_foreign_function: resolve_lua calls back the context that asked, arguments in buffer 8 (Envoy has no caller; Kong's)",
			ref:  "Kong ngx_wasm_module src/common/proxy_wasm/ngx_proxy_wasm_foreign_call.c (resolve_lua); " + refCPPH + " (ContextBase::onForeignFunction)",
			script: "request_headers: ffi resolve_lua 127.0.0.1 | ffi resolve_lua localhost | ret 1\n" +
				"foreign: buf_get 8 0 100 | continue 0",
			run: func(e *abiEnv) error {
				// The stream stays paused until proxy_on_foreign_function
				// continues it.
				if err := ok200(e.get("/f")); err != nil {
					return err
				}
				l, err := e.line("p", "foreign ctx=")
				if err != nil {
					return err
				}
				if !strings.Contains(l, " fid=0 size=") {
					return fmt.Errorf("%q, want function id 0", l)
				}
				b, err := e.line("p", "foreign buf_get")
				if err != nil {
					return err
				}
				v := strings.TrimPrefix(b, "foreign buf_get: status=0 ")
				if v == b || !strings.HasSuffix(v, "localhost") || (v[0] != 4 && v[0] != 16) || len(v) != 1+int(v[0])+len("localhost") {
					return fmt.Errorf("%q, want address length, address, name", b)
				}
				return e.expectLine("p", "request_headers ffi", `request_headers ffi: status=0 len=4 "\x7f\x00\x00\x01"`)
			},
		},
		{
			name:   "grpc_cancel and grpc_close on an unknown call id are NotFound",
			ref:    refEnvoy + " (Context::grpcCancel, grpcClose: unknown token -> NotFound)",
			script: `request_headers: grpc_cancel 4242 | grpc_close 4242`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/g")); err != nil {
					return err
				}
				return all(e.expectLine("p", "request_headers grpc_cancel", "request_headers grpc_cancel: status=1"),
					e.expectLine("p", "request_headers grpc_close", "request_headers grpc_close: status=1"))
			},
		},
	}
}

func stateCases() []abiCase {
	return []abiCase{
		{
			name:   "shared data: set (cas 0 writes), get with cas, CAS conflict, missing key",
			ref:    refEnvoy + " (Context::setSharedData / getSharedData; proxy-wasm-cpp-host src/shared_data.cc: cas mismatch -> CasMismatch, missing -> NotFound)",
			script: `request_headers: shared_set k1 v1 0 | shared_get k1 | shared_set k1 v2 999999 | shared_get k1 | shared_get never-set`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/shared")); err != nil {
					return err
				}
				var got []string
				for _, l := range e.logs("p") {
					if strings.HasPrefix(l, "request_headers shared_") {
						got = append(got, l)
					}
				}
				if len(got) != 5 || got[0] != "request_headers shared_set: status=0" || !strings.HasPrefix(got[1], "request_headers shared_get: status=0 v1 cas=") ||
					got[1] == "request_headers shared_get: status=0 v1 cas=0" || got[2] != "request_headers shared_set: status=8" ||
					got[3] != got[1] || got[4] != "request_headers shared_get: status=1  cas=0" {
					return fmt.Errorf("got %q", got)
				}
				return nil
			},
		},
		{
			name: "shared data is shared across plugins (one VM writes, another reads)",
			ref:  refEnvoy + " (shared data is per vm_id... keyed globally in proxy-wasm-cpp-host src/shared_data.cc)",
			plugins: plugin("a", "rawabi", "request_headers: shared_set cross-plugin from-a 0", "") +
				plugin("b", "rawabi", "request_headers: shared_get cross-plugin", ""),
			routePlugins: `["a", "b"]`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/shared")); err != nil {
					return err
				}
				return e.wantLogs("b", "request_headers shared_get: status=0 from-a cas=")
			},
		},
		{
			name:   "shared queue: register, dequeue when empty is Empty, resolve of an unknown queue is NotFound",
			ref:    refEnvoy + " (Context::registerSharedQueue, resolveSharedQueue, dequeueSharedQueueItem); proxy-wasm-cpp-host src/shared_queue.cc",
			script: `configure: q_register jobs | q_dequeue | q_resolve novm nosuchqueue`,
			run: func(e *abiEnv) error {
				return all(e.wantLogs("p", "configure q_register: status=0 id="),
					e.expectLine("p", "configure q_dequeue", "configure q_dequeue: status=7 "),
					e.expectLine("p", "configure q_resolve", "configure q_resolve: status=1 id=0"))
			},
		},
		{
			name:         "shared queue wake-up across plugins: one plugin enqueues, the registering plugin gets proxy_on_queue_ready and dequeues",
			ref:          refCPPH + " (ContextBase::onQueueReady); proxy-wasm-cpp-host src/shared_queue.cc (enqueue wakes the registering root context)",
			plugins:      plugin("a", "rawabi", "configure: q_register jobs\nqueue_ready: q_dequeue", `vm_id = "qvm"`),
			routePlugins: `[]`,
			run:          queueAcrossPlugins,
		},
	}
}

func miscCases() []abiCase {
	return []abiCase{
		{
			name:   "proxy_log at every level maps to the host's levels (trace/debug -> debug, info, warn, error, critical -> error)",
			ref:    refEnvoy + " (Context::log: spdlog levels); " + refSpec,
			script: `configure: log 0 lvl-trace | log 1 lvl-debug | log 2 lvl-info | log 3 lvl-warn | log 4 lvl-error | log 5 lvl-critical`,
			run: func(e *abiEnv) error {
				want := map[string]zapcore.Level{"lvl-trace": zapcore.DebugLevel, "lvl-debug": zapcore.DebugLevel, "lvl-info": zapcore.InfoLevel,
					"lvl-warn": zapcore.WarnLevel, "lvl-error": zapcore.ErrorLevel, "lvl-critical": zapcore.ErrorLevel}
				for _, msg := range sortedKeys(want) {
					if _, err := e.waitLog("p", msg); err != nil {
						return err
					}
					l, _ := levelOf(e, "p", msg)
					if l != want[msg] && !(msg == "lvl-critical" && l > zapcore.ErrorLevel) {
						return fmt.Errorf("%s logged at %s, want %s", msg, l, want[msg])
					}
				}
				return nil
			},
		},
		{
			name:   "proxy_get_log_level reports the most verbose level kept (debug here)",
			ref:    refEnvoy + " (Context::getLogLevel); " + refSpec + " (0.2.1 only)",
			script: `configure: loglevel`,
			run: func(e *abiEnv) error {
				return e.expectLine("p", "configure loglevel", "configure loglevel: status=0 level=1")
			},
		},
		{
			name:   "proxy_get_current_time_nanoseconds is the real wall clock",
			ref:    refCPPHExp + " (get_current_time_nanoseconds: system clock)",
			script: `request_headers: time`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/t")); err != nil {
					return err
				}
				return e.expectLine("p", "request_headers time", "request_headers time: status=0 nonzero=true")
			},
		},
		{
			name:   "proxy_set_tick_period_milliseconds drives proxy_on_tick on the root context; period 0 stops it",
			ref:    refEnvoy + " (Context::setTickPeriod, onTick)",
			script: "configure: tick 20\ntick: log 2 ticked | tick 0",
			run: func(e *abiEnv) error {
				if err := e.wantLogs("p", "ticked"); err != nil {
					return err
				}
				time.Sleep(200 * time.Millisecond)
				n := 0
				for _, l := range e.logs("p") {
					if l == "ticked" {
						n++
					}
				}
				if n != 1 {
					return fmt.Errorf("%d ticks after period 0, want 1", n)
				}
				return nil
			},
		},
		{
			name:   "properties: request.* and plugin_name",
			ref:    refEnvoyAttr + "; " + refEnvoy + " (Context::getProperty)",
			script: `request_headers: prop_get request/path | prop_get request/url_path | prop_get request/method | prop_get request/scheme | prop_get request/protocol | prop_get request/host | prop_get plugin_name | prop_get request/useragent`,
			run: func(e *abiEnv) error {
				req := reqWith("GET", e.base+"/props?a=b", "", "user-agent", "conformance-ua")
				if err := ok200(e.do(req)); err != nil {
					return err
				}
				host := strings.TrimPrefix(e.base, "http://")
				return e.ordered("p", "prop_get: status=0 /props?a=b", "prop_get: status=0 /props", "prop_get: status=0 GET",
					"prop_get: status=0 http", "prop_get: status=0 HTTP/1.1", "prop_get: status=0 "+host, "prop_get: status=0 p",
					"prop_get: status=0 conformance-ua")
			},
		},
		{
			name:   "properties: source/destination address and port (port as 8-byte little-endian integer), response.code",
			ref:    refEnvoyAttr + " (source.address, destination.port int, response.code int)",
			script: "request_headers: prop_get source/address | prop_geti destination/port\nresponse_headers: prop_geti response/code",
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/status/200")); err != nil {
					return err
				}
				_, port, _ := strings.Cut(strings.TrimPrefix(e.base, "http://"), ":")
				return all(e.wantLogs("p", "request_headers prop_get: status=0 127.0.0.1:"),
					e.expectLine("p", "request_headers prop_geti", "request_headers prop_geti: status=0 "+port),
					e.expectLine("p", "response_headers prop_geti", "response_headers prop_geti: status=0 200"))
			},
		},
		{
			name:   "properties: unknown path is NotFound; set_property then get_property round-trips",
			ref:    refEnvoy + " (Context::getProperty NotFound; setProperty stores filter state)",
			script: `request_headers: prop_get no/such/property | prop_set my/key my-value | prop_get my/key`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/p")); err != nil {
					return err
				}
				return e.ordered("p", "request_headers prop_get: status=1 ", "request_headers prop_set: status=0", "request_headers prop_get: status=0 my-value")
			},
		},
		{
			name:   "call_foreign_function: compress/uncompress round trip (zlib); unknown function is NotFound",
			ref:    refEnvoyFF + " (compress, uncompress); " + refEnvoy + " (Context::callForeignFunction)",
			script: `configure: ffi_roundtrip hello-foreign-world | ffi no_such_function x`,
			run: func(e *abiEnv) error {
				return all(e.expectLine("p", "configure ffi_roundtrip", "configure ffi_roundtrip: status=0 status=0 hello-foreign-world"),
					e.wantLogs("p", "configure ffi: status=1 "))
			},
		},
		{
			name: "metrics: counter, gauge and histogram defined, incremented/recorded, read back; tags from _key=value segments on /metrics",
			ref:  refEnvoy + " (Context::defineMetric, incrementMetric, recordMetric, getMetric); envoy stats tag extraction",
			script: `configure: m_define 0 conformance_requests_total_route=abi | m_define 1 conformance_inflight | m_define 2 conformance_size_bytes
request_headers: m_inc conformance_requests_total_route=abi 3 | m_get conformance_requests_total_route=abi | m_record conformance_inflight 42 | m_get conformance_inflight | m_record conformance_size_bytes 512`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/m")); err != nil {
					return err
				}
				if err := e.ordered("p", "request_headers m_inc: status=0", "request_headers m_get: status=0 value=3",
					"request_headers m_record: status=0", "request_headers m_get: status=0 value=42"); err != nil {
					return err
				}
				m := e.s.metrics(e.t)
				for _, w := range []string{`conformance_requests_total{route="abi"} 3`, "conformance_inflight 42", "conformance_size_bytes_count 1"} {
					if !strings.Contains(m, w) {
						return fmt.Errorf("/metrics lacks %q", w)
					}
				}
				return nil
			},
		},
		{
			name:   "out-of-range pointers are InvalidMemoryAccess, never a crash",
			ref:    refCPPHExp + " (every hostcall checks guest memory: InvalidMemoryAccess)",
			script: `request_headers: badptr`,
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/bad")); err != nil {
					return err
				}
				return e.expectLine("p", "request_headers badptr", "request_headers badptr: status=6 status=6 status=6 status=6")
			},
		},
	}
}

func sandboxCases() []abiCase {
	hostile := func(cfg, failure string) string {
		return fmt.Sprintf(`
[[plugins]]
name = "p"
wasm = %q
config_raw = %q
failure = %q
vm = { call_timeout = "300ms", instances = 1 }
`, guestWasm("hostile"), cfg, failure)
	}
	return []abiCase{
		{
			name:    "a trap fails closed (503 like Envoy's default), a fresh instance serves the next request, the failure is counted",
			ref:     refEnvoy + " (fail closed: 503 on a VM failure); envoy PR #36456 (FAIL_RELOAD)",
			plugins: hostile("trap@2", "closed"),
			run: func(e *abiEnv) error {
				codes := []int{}
				for i := 0; i < 3; i++ {
					r, err := e.get("/h")
					if err != nil {
						return err
					}
					codes = append(codes, r.status)
				}
				if codes[0] != 200 || codes[1] != 503 || codes[2] != 200 {
					return fmt.Errorf("statuses %v, want [200 503 200]", codes)
				}
				if m := e.s.metrics(e.t); !strings.Contains(m, "wasm_instance_failures_total") {
					return fmt.Errorf("/metrics lacks wasm_instance_failures_total")
				}
				return nil
			},
		},
		{
			name:    "failure = open skips a trapping filter: the request reaches the upstream",
			ref:     "envoy api envoy/extensions/wasm/v3/wasm.proto (fail_open)",
			plugins: hostile("trap", "open"),
			run: func(e *abiEnv) error {
				return ok200(e.get("/h"))
			},
		},
		{
			name:    "an endless loop is cut off by the call deadline (503), the process goes on",
			ref:     "proxy-wasm spec (security: per-call CPU limits); sluice goes beyond Envoy, which has no per-call deadline",
			plugins: hostile("loop@2", "closed"),
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/h")); err != nil {
					return err
				}
				r, err := e.get("/h")
				if err := expectStatus(r, err, 503); err != nil {
					return err
				}
				return ok200(e.get("/h"))
			},
		},
	}
}

func abi010Cases() []abiCase {
	p := func(cfg string) string {
		return fmt.Sprintf(`
[[plugins]]
name = "p"
wasm = %q
config_raw = %q
vm = { call_timeout = "5s", instances = 1 }
`, guestWasm("abi010"), cfg)
	}
	return []abiCase{
		{
			name:    "0.1.0: proxy_get_configuration, malloc as the allocator",
			ref:     refSpec010 + " (proxy_get_configuration); " + refCPPHWasm + " (malloc export)",
			plugins: p("old-style-config"),
			run: func(e *abiEnv) error {
				return e.wantLogs("p", "configure 0 old-style-config")
			},
		},
		{
			name:    "0.1.0: header callbacks without end_of_stream; a missing header is Ok and empty; clear_route_cache Ok; continue_response Ok",
			ref:     refSpec010 + "; " + refCPPH + " (0.1.0 getHeaderMapValue returns Ok for a missing key)",
			plugins: p("plain"),
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/old")); err != nil {
					return err
				}
				return all(e.wantLogs("p", "missing=0 clear=0", "response_headers n="), e.wantLogs("p", "continue=0"))
			},
		},
		{
			name:    "0.1.0: Pause in request headers resumed by proxy_continue_request from a tick",
			ref:     refSpec010 + " (proxy_continue_request); " + refEnvoy,
			plugins: p("pause"),
			run: func(e *abiEnv) error {
				if err := ok200(e.get("/old-pause")); err != nil {
					return err
				}
				return e.wantLogs("p", "tick continue=0")
			},
		},
	}
}

var _ = http.StatusOK

// queueAcrossPlugins learns the id plugin a's queue gets (ids are
// deterministic per process), then runs a second sluice where plugin b, on
// the route, resolves and enqueues to it.
func queueAcrossPlugins(e *abiEnv) error {
	l, err := e.line("a", "configure q_register: status=0 id=")
	if err != nil {
		return err
	}
	id := strings.TrimPrefix(l, "configure q_register: status=0 id=")
	plugins := plugin("a", "rawabi", "configure: q_register jobs\nqueue_ready: q_dequeue", `vm_id = "qvm"`) +
		plugin("b", "rawabi", "request_headers: q_resolve qvm jobs | q_enqueue "+id+" hello-queue", "")
	s, err := trySluice(e.t, abiConfig(e.up, e.grpc, plugins, `["b"]`))
	if err != nil {
		return err
	}
	e2 := &abiEnv{t: e.t, s: s, base: "http://" + s.ListenerAddr("l"), up: e.up, grpc: e.grpc}
	if err := ok200(e2.get("/q")); err != nil {
		return err
	}
	return all(e2.expectLine("b", "request_headers q_resolve", "request_headers q_resolve: status=0 id="+id),
		e2.expectLine("b", "request_headers q_enqueue", "request_headers q_enqueue: status=0"),
		e2.wantLogs("a", "queue_ready qid="+id, "queue_ready q_dequeue: status=0 hello-queue"))
}
