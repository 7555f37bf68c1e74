package keyauth

import (
	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// Headers set upstream, as Kong names them. Values a client sends are
// removed first so a consumer cannot be claimed by sending the header.
const (
	HeaderConsumerUsername = "x-consumer-username"
	HeaderConsumerID       = "x-consumer-id"
	HeaderAnonymous        = "x-anonymous-consumer"
)

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{} }

type plugin struct {
	types.DefaultPluginContext
	auth *Auth
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	return types.OnPluginStartStatus(common.LoadConfig(Name, func(b []byte) (err error) {
		p.auth, err = Parse(b, common.ReadFile)
		return err
	}))
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &stream{auth: p.auth} }

type stream struct {
	types.DefaultHttpContext
	auth *Auth
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	h := common.RequestHeaders(Name)
	r := s.auth.Check(h)
	if r.Skip {
		return types.ActionContinue
	}
	if r.Reply.Status != 0 {
		r.Reply.Send()
		return types.ActionPause
	}
	// Replace drops any value a client sent for the consumer headers; the
	// anonymous marker is removed when the client sent one.
	if r.Anonymous {
		common.Must(Name, "setting anonymous", proxywasm.ReplaceHttpRequestHeader(HeaderAnonymous, "true"))
	} else if _, sent := common.Header(h, HeaderAnonymous); sent {
		common.Must(Name, "removing "+HeaderAnonymous, proxywasm.RemoveHttpRequestHeader(HeaderAnonymous))
	}
	common.Must(Name, "setting consumer", proxywasm.ReplaceHttpRequestHeader(HeaderConsumerUsername, r.Consumer))
	common.SetConsumer(Name, r.Consumer)
	common.Must(Name, "setting consumer id", proxywasm.ReplaceHttpRequestHeader(HeaderConsumerID, r.Consumer))
	if r.RemoveHeader != "" {
		common.Must(Name, "hiding the key header", proxywasm.RemoveHttpRequestHeader(r.RemoveHeader))
	}
	if r.NewPath != "" {
		common.Must(Name, "hiding the key parameter", proxywasm.ReplaceHttpRequestHeader(":path", r.NewPath))
	}
	return types.ActionContinue
}
