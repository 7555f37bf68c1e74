package responseratelimiting

import (
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	l           *Limiter
	storeErrors proxywasm.MetricCounter
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	name, err := proxywasm.GetPluginName()
	if err != nil || name == "" {
		name = Name
	}
	if !common.LoadConfig(Name, func(b []byte) (err error) {
		p.l, err = Parse(b, name)
		return err
	}) {
		return types.OnPluginStartStatusFailed
	}
	p.storeErrors = proxywasm.DefineCounterMetric("sluice_response_ratelimiting_store_errors_total{plugin=\"" + name + "\",policy=\"" + p.l.Policy + "\"}")
	return types.OnPluginStartStatusOK
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{p: p} }

type stream struct {
	types.DefaultHttpContext
	p  *plugin
	id string
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	s.id = s.p.l.Identifier(common.Consumer(), common.ClientIP())
	d := s.p.l.OnRequest(common.SharedData{}, s.id, time.Unix(0, common.NowNanos()))
	if d.StoreError != nil {
		s.p.storeErrors.Increment(1)
		proxywasm.LogWarnf("%s: shared store failed: %v", Name, d.StoreError)
	}
	if d.Reply.Status != 0 {
		d.Reply.Send()
		return types.ActionPause
	}
	for _, h := range d.UpstreamHeaders {
		common.Must(Name, "setting "+h[0], proxywasm.ReplaceHttpRequestHeader(h[0], h[1]))
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	l := s.p.l
	var usage []string
	for _, name := range l.HeaderNames {
		if v, err := proxywasm.GetHttpResponseHeader(name); err == nil {
			usage = append(usage, v)
			// The usage header is for sluice, not the client.
			common.Must(Name, "removing "+name, proxywasm.RemoveHttpResponseHeader(name))
		}
	}
	h, err := l.OnResponse(common.SharedData{}, s.id, l.ParseUsage(strings.Join(usage, ",")), time.Unix(0, common.NowNanos()))
	if err != nil {
		s.p.storeErrors.Increment(1)
		proxywasm.LogWarnf("%s: shared store failed: %v", Name, err)
	}
	for _, kv := range h {
		common.Must(Name, "setting "+kv[0], proxywasm.ReplaceHttpResponseHeader(kv[0], kv[1]))
	}
	return types.ActionContinue
}
