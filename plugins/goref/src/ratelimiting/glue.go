package ratelimiting

import (
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	lim         *Limiter
	storeErrors proxywasm.MetricCounter
	rejected    proxywasm.MetricCounter
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	name, err := proxywasm.GetPluginName()
	if err != nil || name == "" {
		name = Name
	}
	ok := common.LoadConfig(Name, func(b []byte) (err error) {
		p.lim, err = Parse(b, name)
		return err
	})
	if !ok {
		return types.OnPluginStartStatusFailed
	}
	p.storeErrors = proxywasm.DefineCounterMetric("sluice_rate_limiting_store_errors_total{plugin=\"" + name + "\",policy=\"" + p.lim.Policy + "\"}")
	p.rejected = proxywasm.DefineCounterMetric("sluice_rate_limiting_rejected_total{plugin=\"" + name + "\"}")
	proxywasm.LogInfof("%s: policy %s (counters in the host's shared data)", name, p.lim.Policy)
	return types.OnPluginStartStatusOK
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{p: p} }

type stream struct {
	types.DefaultHttpContext
	p       *plugin
	headers [][2]string
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	lim := s.p.lim
	id := lim.Identifier(common.HostRequest{})
	d := lim.Decide(common.SharedData{}, id, time.Unix(0, common.NowNanos()))
	if d.StoreError != nil {
		s.p.storeErrors.Increment(1)
		proxywasm.LogWarnf("%s: shared store failed, request %s: %v", Name,
			map[bool]string{true: "rejected", false: "let through (fault_tolerant)"}[d.Reply.Status != 0], d.StoreError)
	}
	if d.Reply.Status != 0 {
		if d.Reply.Status == lim.errorCode {
			s.p.rejected.Increment(1)
		}
		d.Reply.Send()
		return types.ActionPause
	}
	s.headers = d.Headers
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	for _, h := range s.headers {
		common.Must(Name, "setting "+h[0], proxywasm.ReplaceHttpResponseHeader(h[0], h[1]))
	}
	return types.ActionContinue
}
