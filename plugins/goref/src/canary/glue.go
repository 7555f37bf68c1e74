package canary

import (
	"math/rand"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	r *Router
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	return types.OnPluginStartStatus(common.LoadConfig(Name, func(b []byte) (err error) {
		p.r, err = Parse(b)
		return err
	}))
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{r: p.r} }

type stream struct {
	types.DefaultHttpContext
	r *Router
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	h := common.RequestHeaders(Name)
	subset := s.r.Pick(h, rand.Float64())
	if subset == "" {
		if _, sent := common.Header(h, SubsetHeader); sent {
			common.Must(Name, "removing "+SubsetHeader, proxywasm.RemoveHttpRequestHeader(SubsetHeader))
		}
		return types.ActionContinue
	}
	common.Must(Name, "setting "+SubsetHeader, proxywasm.ReplaceHttpRequestHeader(SubsetHeader, subset))
	common.Must(Name, "setting "+SubsetProperty, proxywasm.SetProperty([]string{SubsetProperty}, []byte(subset)))
	return types.ActionContinue
}
