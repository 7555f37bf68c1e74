package responsetransformer

import (
	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	t *Transformer
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	return types.OnPluginStartStatus(common.LoadConfig(Name, func(b []byte) (err error) {
		p.t, err = Parse(b)
		return err
	}))
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{t: p.t} }

type stream struct {
	types.DefaultHttpContext
	t    *Transformer
	body bool
}

func (s *stream) OnHttpResponseHeaders(_ int, eos bool) types.Action {
	h, changed, body := s.t.Headers(common.ResponseHeaders(Name))
	if body && !eos {
		out := h[:0]
		for _, kv := range h {
			if kv[0] != "content-length" {
				out = append(out, kv)
			}
		}
		h, changed, s.body = out, true, true
	}
	if changed {
		common.Must(Name, "replacing response headers", proxywasm.ReplaceHttpResponseHeaders(h))
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseBody(size int, eos bool) types.Action {
	if !s.body {
		return types.ActionContinue
	}
	if !eos {
		return types.ActionPause // buffer until the whole body is here
	}
	b, err := proxywasm.GetHttpResponseBody(0, size)
	if err != nil && size > 0 {
		proxywasm.LogErrorf("%s: reading the response body: %v", Name, err)
		return types.ActionContinue
	}
	if out, ok := s.t.Body(b); ok {
		common.Must(Name, "replacing the response body", proxywasm.ReplaceHttpResponseBody(out))
	}
	return types.ActionContinue
}
