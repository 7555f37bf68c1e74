package hostabi

import (
	"context"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// emscriptenFuncs are the "env" imports of Emscripten's runtime that
// proxy-wasm-cpp-host provides (exports.cc, registered by
// WasmBase::registerCallbacks), with its behaviour: C++ filters built with
// Emscripten import them and cannot be instantiated without them.
func emscriptenFuncs() []hostFunc {
	return []hostFunc{
		// Like proxy_* calls, pthread_equal is refused during VM start-up,
		// where cpp-host allows only proxy_log, the function below and WASI.
		{name: "pthread_equal", params: i32s(2), names: []string{"left", "right"}, results: i32s(1),
			fn: wrap("pthread_equal", pthreadEqual)},
		// Emscripten tells the embedder its memory grew (for JS views of
		// it); cpp-host ignores it, and so does sluice.
		// Like cpp-host, it is refused inside the allocator.
		{name: "emscripten_notify_memory_growth", fn: guardAllocator("emscripten_notify_memory_growth", func(context.Context, api.Module, []uint64) {}),
			params: i32s(1), names: []string{"memory_index"}},
	}
}

// pthreadEqual compares two thread ids (1 when equal); its answer is a
// boolean word, not a status.
func pthreadEqual(_ context.Context, _ *instance, a []uint64) abi.Status {
	if u32(a[0]) == u32(a[1]) {
		return 1
	}
	return 0
}
