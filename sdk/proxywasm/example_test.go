package proxywasm_test

import (
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// A filter that adds a header to every request. In a real filter the
// registration goes in init, and main is empty.
func Example() {
	proxywasm.SetHttpContext(func(contextID uint32) types.HttpContext { return &addHeader{} })
}

type addHeader struct{ types.DefaultHttpContext }

func (*addHeader) OnHttpRequestHeaders(numHeaders int, endOfStream bool) types.Action {
	if err := proxywasm.AddHttpRequestHeader("x-hello", "sluice"); err != nil {
		proxywasm.LogErrorf("adding x-hello: %v", err)
	}
	return types.ActionContinue
}

// Two plugins in one module, chosen by the root_id the host configures.
func ExampleRegisterPlugin() {
	proxywasm.RegisterPlugin("deny-all", func(uint32) types.PluginContext { return &denyAll{} })
	proxywasm.RegisterPlugin("noop", func(uint32) types.PluginContext { return &types.DefaultPluginContext{} })
}

type denyAll struct{ types.DefaultPluginContext }

func (*denyAll) NewHttpContext(uint32) types.HttpContext { return &deny{} }

type deny struct{ types.DefaultHttpContext }

func (*deny) OnHttpRequestHeaders(int, bool) types.Action {
	_ = proxywasm.SendHttpResponse(403, [][2]string{{"content-type", "text/plain"}}, []byte("denied\n"), -1)
	return types.ActionPause
}

// An auth call-out: pause the request, ask a cluster, then resume or deny.
func ExampleDispatchHttpCall() {
	proxywasm.SetHttpContext(func(uint32) types.HttpContext { return &authz{} })
}

type authz struct{ types.DefaultHttpContext }

func (*authz) OnHttpRequestHeaders(int, bool) types.Action {
	token, _ := proxywasm.GetHttpRequestHeader("authorization")
	headers := [][2]string{{":method", "GET"}, {":path", "/check"}, {":authority", "authz"}, {"authorization", token}}
	_, err := proxywasm.DispatchHttpCall("authz", headers, nil, nil, 1000, func(numHeaders, _, _ int) {
		status := ""
		if numHeaders > 0 {
			status, _ = proxywasm.GetHttpCallResponseHeader(":status")
		}
		if status == "200" {
			_ = proxywasm.ResumeHttpRequest()
			return
		}
		_ = proxywasm.SendHttpResponse(403, nil, []byte("forbidden"), -1)
	})
	if err != nil {
		_ = proxywasm.SendHttpResponse(503, nil, []byte("authz unavailable"), -1)
	}
	return types.ActionPause
}

// Count requests in a host-wide counter with compare-and-swap on shared data.
func ExampleSetSharedData() {
	for attempt := 0; attempt < 5; attempt++ {
		v, cas, err := proxywasm.GetSharedData("hits")
		n := uint64(0)
		if err == nil {
			n, _ = proxywasm.DecodeUint64(v)
		}
		if err := proxywasm.SetSharedData("hits", proxywasm.EncodeUint64(n+1), cas); err == nil {
			return
		}
	}
}
