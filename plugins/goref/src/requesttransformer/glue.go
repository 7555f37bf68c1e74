package requesttransformer

import (
	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/plugins/src/internal/transform"
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
	form bool
	tmpl *transform.Request
}

func (s *stream) OnHttpRequestHeaders(_ int, eos bool) types.Action {
	r := s.t.Request(common.RequestHeaders(Name))
	if r.TransformBody && !eos {
		// The body's length will change; the proxy sets it again.
		r.Headers = removeContentLength(r.Headers)
		r.Changed = true
		s.body, s.form, s.tmpl = true, r.Form, r.Template
	}
	if r.Changed {
		common.Must(Name, "replacing request headers", proxywasm.ReplaceHttpRequestHeaders(r.Headers))
	}
	return types.ActionContinue
}

func (s *stream) OnHttpRequestBody(size int, eos bool) types.Action {
	if !s.body {
		return types.ActionContinue
	}
	if !eos {
		return types.ActionPause // buffer until the whole body is here
	}
	b, err := proxywasm.GetHttpRequestBody(0, size)
	if err != nil {
		proxywasm.LogErrorf("%s: reading the request body: %v", Name, err)
		return types.ActionContinue
	}
	if out, ok := s.t.Body(b, s.tmpl, s.form); ok {
		common.Must(Name, "replacing the request body", proxywasm.ReplaceHttpRequestBody(out))
	}
	return types.ActionContinue
}

func removeContentLength(h [][2]string) [][2]string {
	out := h[:0]
	for _, kv := range h {
		if kv[0] != "content-length" {
			out = append(out, kv)
		}
	}
	return out
}
