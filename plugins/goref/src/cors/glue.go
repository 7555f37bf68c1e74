package cors

import (
	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	cors *CORS
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	return types.OnPluginStartStatus(common.LoadConfig(Name, func(b []byte) (err error) {
		p.cors, err = Parse(b)
		return err
	}))
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{cors: p.cors} }

type stream struct {
	types.DefaultHttpContext
	cors   *CORS
	origin string
	seen   bool
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	h := common.RequestHeaders(Name)
	if r := s.cors.Preflight(h); r != nil {
		r.Send()
		return types.ActionPause
	}
	s.origin, s.seen = common.Header(h, "origin")
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	if !s.seen {
		return types.ActionContinue
	}
	for _, h := range s.cors.ResponseHeaders(s.origin) {
		if h[0] == "vary" {
			common.Must(Name, "adding vary", proxywasm.AddHttpResponseHeader(h[0], h[1]))
			continue
		}
		common.Must(Name, "setting "+h[0], proxywasm.ReplaceHttpResponseHeader(h[0], h[1]))
	}
	return types.ActionContinue
}
