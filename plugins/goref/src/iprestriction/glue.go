package iprestriction

import (
	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	f *Filter
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	return types.OnPluginStartStatus(common.LoadConfig(Name, func(b []byte) (err error) {
		p.f, err = Parse(b)
		return err
	}))
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &httpStream{f: p.f} }
func (p *plugin) NewTcpContext(uint32) types.TcpContext   { return &tcpStream{f: p.f} }

type httpStream struct {
	types.DefaultHttpContext
	f *Filter
}

func (s *httpStream) OnHttpRequestHeaders(int, bool) types.Action {
	if s.f.Allowed(common.ClientIP()) {
		return types.ActionContinue
	}
	s.f.Reply().Send()
	return types.ActionPause
}

type tcpStream struct {
	types.DefaultTcpContext
	f *Filter
}

func (s *tcpStream) OnNewConnection() types.Action {
	if s.f.Allowed(common.ClientIP()) {
		return types.ActionContinue
	}
	common.Must(Name, "closing a refused connection", proxywasm.CloseDownstream())
	return types.ActionPause
}
