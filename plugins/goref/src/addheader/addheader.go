// Package addheader is the add-header plugin: fixed headers added to every
// request (before it goes upstream) and every response.
package addheader

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// Name is the plugin's root_id (wasm = "builtin:add-header").
const Name = "add-header"

// Config is the plugin's configuration.
type Config struct {
	// RequestHeaders are added to the request; existing values are kept.
	RequestHeaders map[string]string `json:"request_headers"`
	// ResponseHeaders are added to the response.
	ResponseHeaders map[string]string `json:"response_headers"`
}

// Parse validates a configuration and returns the headers in a fixed order.
func Parse(data []byte) (req, resp [][2]string, err error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, nil, err
	}
	if req, err = sorted(c.RequestHeaders, "request_headers"); err != nil {
		return nil, nil, err
	}
	if resp, err = sorted(c.ResponseHeaders, "response_headers"); err != nil {
		return nil, nil, err
	}
	return req, resp, nil
}

func sorted(m map[string]string, key string) ([][2]string, error) {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		if k == "" || strings.HasPrefix(k, ":") {
			return nil, fmt.Errorf("config: %s: %q is not a header name that may be added", key, k)
		}
		out = append(out, [2]string{strings.ToLower(k), v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out, nil
}

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	req, resp [][2]string
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCriticalf("%s: reading configuration: %v", Name, err)
		return types.OnPluginStartStatusFailed
	}
	if p.req, p.resp, err = Parse(data); err != nil {
		proxywasm.LogCriticalf("%s: %v", Name, err)
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{p: p} }

type stream struct {
	types.DefaultHttpContext
	p *plugin
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	for _, h := range s.p.req {
		if err := proxywasm.AddHttpRequestHeader(h[0], h[1]); err != nil {
			proxywasm.LogErrorf("%s: adding request header %q: %v", Name, h[0], err)
		}
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	for _, h := range s.p.resp {
		if err := proxywasm.AddHttpResponseHeader(h[0], h[1]); err != nil {
			proxywasm.LogErrorf("%s: adding response header %q: %v", Name, h[0], err)
		}
	}
	return types.ActionContinue
}
