// Command sdk is the benchmark's header filter written with the SDK; raw/
// is the same filter against the bare ABI. Their req/s ratio is the SDK's
// overhead.
package main

import (
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.SetHttpContext(func(uint32) types.HttpContext { return &filter{} })
}

type filter struct{ types.DefaultHttpContext }

func (*filter) OnHttpRequestHeaders(int, bool) types.Action {
	_ = proxywasm.AddHttpRequestHeader("x-bench", "1")
	return types.ActionContinue
}
