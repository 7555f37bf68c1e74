// Filters written with the AssemblyScript proxy-wasm SDK
// (@solo-io/proxy-runtime 0.1.8, assemblyscript 0.14.13), loaded into
// sluice by conformance/assemblyscript_test.go. Two root contexts, chosen
// by the plugin's root_id:
//
//   add_header      the SDK README's example: every response gets the
//                   header "hello" set to the plugin configuration, or
//                   "world!" when the configuration is empty.
//   as_conformance  request side: adds x-as-root-id (the plugin_root_id
//                   property) for the upstream, answers 403 itself when the
//                   request has x-as-deny, logs the request path at info;
//                   response side: adds x-as-response.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  stream_context, send_local_response, log, LogLevelValues, GrpcStatusValues, Headers,
} from "@solo-io/proxy-runtime";

class AddHeaderRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new AddHeader(context_id, this);
  }
}

class AddHeader extends Context {
  constructor(context_id: u32, root_context: AddHeaderRoot) {
    super(context_id, root_context);
  }
  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const cfg = this.root_context.getConfiguration();
    stream_context.headers.response.add("hello", cfg == "" ? "world!" : cfg);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new AddHeaderRoot(context_id); }, "add_header");

class ConformanceRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new ConformanceFilter(context_id, this);
  }
}

class ConformanceFilter extends Context {
  constructor(context_id: u32, root_context: ConformanceRoot) {
    super(context_id, root_context);
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const path = stream_context.headers.request.get(":path");
    log(LogLevelValues.info, "as_conformance request " + path);
    if (stream_context.headers.request.get("x-as-deny") != "") {
      const headers: Headers = [];
      send_local_response(403, "denied_by_assemblyscript", String.UTF8.encode("denied by assemblyscript\n"), headers, GrpcStatusValues.Unknown);
      return FilterHeadersStatusValues.StopIteration;
    }
    stream_context.headers.request.add("x-as-root-id", "as_conformance");
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-as-response", "yes");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new ConformanceRoot(context_id); }, "as_conformance");
