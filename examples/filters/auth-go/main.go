// Command auth-go is the example auth call-out filter: for every request it
// asks an auth service (a [[clusters]] entry) with an http_call, holds the
// request until the answer comes, then lets it through (a 2xx answer) or
// answers 403 itself (any other answer, a timeout or an unreachable
// service: it fails closed). Configuration:
//
//	{"cluster": "auth", "path": "/check", "timeout_ms": 1000,
//	 "forward": ["authorization"], "copy": ["x-auth-user"]}
//
// forward: request headers passed to the auth service; copy: headers of a
// 2xx answer added to the request upstream (who the caller is).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.SetPluginContext(func(uint32) types.PluginContext { return &plugin{} })
}

type config struct {
	Cluster   string   `json:"cluster"`
	Path      string   `json:"path"`
	TimeoutMs uint32   `json:"timeout_ms"`
	Forward   []string `json:"forward"`
	Copy      []string `json:"copy"`
}

func parseConfig(data []byte) (config, error) {
	c := config{Path: "/check", TimeoutMs: 1000, Forward: []string{"authorization"}, Copy: []string{"x-auth-user"}}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if c.Cluster == "" {
		return c, errors.New("config: cluster: the auth service's cluster is required")
	}
	if !strings.HasPrefix(c.Path, "/") {
		return c, fmt.Errorf("config: path: %q must start with /", c.Path)
	}
	for i := range c.Forward {
		c.Forward[i] = strings.ToLower(c.Forward[i])
	}
	for i := range c.Copy {
		c.Copy[i] = strings.ToLower(c.Copy[i])
	}
	return c, nil
}

// allowed is the decision on the auth service's answer: its :status
// header, 2xx lets the request through.
func allowed(headers [][2]string) bool {
	for _, h := range headers {
		if h[0] == ":status" {
			return len(h[1]) == 3 && h[1][0] == '2'
		}
	}
	return false
}

type plugin struct {
	types.DefaultPluginContext
	cfg config
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil {
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
	call := [][2]string{{":method", "GET"}, {":path", s.cfg.Path}, {":authority", s.cfg.Cluster}}
	for _, name := range s.cfg.Forward {
		if v, err := proxywasm.GetHttpRequestHeader(name); err == nil {
			call = append(call, [2]string{name, v})
		}
	}
	if path, err := proxywasm.GetHttpRequestHeader(":path"); err == nil {
		call = append(call, [2]string{"x-original-path", path})
	}
	if _, err := proxywasm.DispatchHttpCall(s.cfg.Cluster, call, nil, nil, s.cfg.TimeoutMs, s.onAnswer); err != nil {
		proxywasm.LogErrorf("calling %s: %v", s.cfg.Cluster, err)
		deny("auth service unavailable")
		return types.ActionPause
	}
	// Hold the request until onAnswer resumes or answers it.
	return types.ActionPause
}

// onAnswer runs with this stream as the effective context.
func (s *stream) onAnswer(numHeaders, _, _ int) {
	if numHeaders == 0 { // the call failed or timed out
		deny("auth service unavailable")
		return
	}
	headers, err := proxywasm.GetHttpCallResponseHeaders()
	if err != nil || !allowed(headers) {
		deny("forbidden")
		return
	}
	for _, h := range headers {
		for _, name := range s.cfg.Copy {
			if h[0] == name {
				_ = proxywasm.ReplaceHttpRequestHeader(name, h[1])
			}
		}
	}
	if err := proxywasm.ResumeHttpRequest(); err != nil {
		proxywasm.LogErrorf("resuming: %v", err)
	}
}

func deny(why string) {
	if err := proxywasm.SendHttpResponse(403, [][2]string{{"content-type", "text/plain"}}, []byte(why+"\n"), -1); err != nil {
		proxywasm.LogErrorf("answering 403: %v", err)
	}
}
