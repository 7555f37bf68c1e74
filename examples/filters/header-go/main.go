// Command header-go is the example header filter, written with sluice's Go
// SDK: it sets a header on every request on its way upstream and another
// on every response on its way back, both named in its configuration:
//
//	{"header": "x-hello", "value": "go",
//	 "response_header": "x-filter", "response_value": "header-go"}
//
// header-rust is the same filter in Rust.
package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// main never runs: the module is a WASI reactor. Register in init.
func main() {}

func init() {
	proxywasm.SetPluginContext(func(uint32) types.PluginContext { return &plugin{} })
}

type config struct {
	Header         string `json:"header"`
	Value          string `json:"value"`
	ResponseHeader string `json:"response_header"`
	ResponseValue  string `json:"response_value"`
}

// parseConfig reads the plugin's config (JSON); an empty one gives the
// defaults. Pseudo-headers cannot be set.
func parseConfig(data []byte) (config, error) {
	c := config{Header: "x-hello", Value: "go", ResponseHeader: "x-filter", ResponseValue: "header-go"}
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := json.Unmarshal(data, &c); err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
	}
	c.Header, c.ResponseHeader = strings.ToLower(c.Header), strings.ToLower(c.ResponseHeader)
	if c.Header == "" || strings.HasPrefix(c.Header, ":") || strings.HasPrefix(c.ResponseHeader, ":") {
		return c, fmt.Errorf("config: %q / %q cannot be set", c.Header, c.ResponseHeader)
	}
	return c, nil
}

type plugin struct {
	types.DefaultPluginContext
	cfg config
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCriticalf("reading configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	if p.cfg, err = parseConfig(data); err != nil {
		proxywasm.LogCriticalf("%v", err)
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{cfg: &p.cfg} }

type stream struct {
	types.DefaultHttpContext
	cfg *config
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	if err := proxywasm.ReplaceHttpRequestHeader(s.cfg.Header, s.cfg.Value); err != nil {
		proxywasm.LogErrorf("setting %s: %v", s.cfg.Header, err)
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	if s.cfg.ResponseHeader == "" {
		return types.ActionContinue
	}
	if err := proxywasm.ReplaceHttpResponseHeader(s.cfg.ResponseHeader, s.cfg.ResponseValue); err != nil {
		proxywasm.LogErrorf("setting %s: %v", s.cfg.ResponseHeader, err)
	}
	return types.ActionContinue
}
