package jwt

import (
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// Headers set upstream for the authenticated consumer, as key-auth does.
const (
	HeaderConsumerUsername = "x-consumer-username"
	HeaderConsumerID       = "x-consumer-id"
	HeaderAnonymous        = "x-anonymous-consumer"
)

// jwksTimeoutMs bounds one JWKS fetch.
const jwksTimeoutMs = 5000

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{waiting: map[uint32]*stream{}} }

type plugin struct {
	types.DefaultPluginContext
	v        *Verifier
	fetching bool
	// nextFetch is when the keys are refreshed (host clock, ns).
	nextFetch int64
	// waiting are streams paused until the first JWKS arrives.
	waiting map[uint32]*stream
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	ok := common.LoadConfig(Name, func(b []byte) (err error) {
		p.v, err = Parse(b, common.ReadFile)
		return err
	})
	if !ok {
		return types.OnPluginStartStatusFailed
	}
	if p.v.JWKSCluster != "" {
		// Ticks drive refreshes and retry a first fetch that failed.
		period := p.v.JWKSRefresh / 10
		if period > 10*time.Second {
			period = 10 * time.Second
		}
		common.Must(Name, "setting the JWKS refresh tick", proxywasm.SetTickPeriodMilliSeconds(uint32(period.Milliseconds())))
		p.fetch()
	}
	return types.OnPluginStartStatusOK
}

func (p *plugin) OnTick() {
	if p.v.JWKSCluster != "" && !p.fetching && common.NowNanos() >= p.nextFetch {
		p.fetch()
	}
}

func (p *plugin) fetch() {
	headers := [][2]string{{":method", "GET"}, {":path", p.v.JWKSPath}, {":authority", p.v.JWKSAuthority},
		{"accept", "application/json"}}
	_, err := proxywasm.DispatchHttpCall(p.v.JWKSCluster, headers, nil, nil, jwksTimeoutMs, p.onJWKS)
	if err != nil {
		proxywasm.LogWarnf("%s: fetching JWKS from cluster %q: %v", Name, p.v.JWKSCluster, err)
		p.nextFetch = common.NowNanos() + int64(time.Second)
		p.release(false)
		return
	}
	p.fetching = true
}

func (p *plugin) onJWKS(numHeaders, bodySize, _ int) {
	p.fetching = false
	ok := false
	if numHeaders == 0 {
		proxywasm.LogWarnf("%s: JWKS fetch from cluster %q failed", Name, p.v.JWKSCluster)
	} else if status, _ := proxywasm.GetHttpCallResponseHeader(":status"); status != "200" {
		proxywasm.LogWarnf("%s: JWKS fetch answered %s", Name, status)
	} else if body, err := proxywasm.GetHttpCallResponseBody(0, bodySize); err != nil {
		proxywasm.LogWarnf("%s: reading JWKS: %v", Name, err)
	} else if err := p.v.SetJWKS(body); err != nil {
		proxywasm.LogWarnf("%s: %v", Name, err)
	} else {
		ok = true
	}
	if ok {
		p.nextFetch = common.NowNanos() + int64(p.v.JWKSRefresh)
	} else {
		p.nextFetch = common.NowNanos() + int64(time.Second)
	}
	p.release(ok)
}

// release resumes (or refuses) the streams that waited for the keys.
func (p *plugin) release(haveKeys bool) {
	for id, s := range p.waiting {
		delete(p.waiting, id)
		if err := proxywasm.SetEffectiveContext(id); err != nil {
			continue
		}
		if !haveKeys {
			common.JSONReply(503, "Unable to fetch the keys to verify the token").Send()
			continue
		}
		if s.apply(s.p.v.Check(s.headers, time.Unix(0, common.NowNanos())), s.headers) {
			common.Must(Name, "resuming the request", proxywasm.ResumeHttpRequest())
		}
	}
}

func (p *plugin) NewHttpContext(id uint32) types.HttpContext { return &stream{p: p, id: id} }

type stream struct {
	types.DefaultHttpContext
	p       *plugin
	id      uint32
	headers [][2]string
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	h := common.RequestHeaders(Name)
	r := s.p.v.Check(h, time.Unix(0, common.NowNanos()))
	if r.NeedKeys {
		s.headers = h
		s.p.waiting[s.id] = s
		if !s.p.fetching {
			s.p.fetch()
		}
		return types.ActionPause
	}
	if s.apply(r, h) {
		return types.ActionContinue
	}
	return types.ActionPause
}

// apply acts on a result for a request with these headers and says
// whether the request may go on.
func (s *stream) apply(r Result, headers [][2]string) bool {
	if r.Skip {
		return true
	}
	if r.Reply.Status != 0 {
		r.Reply.Send()
		return false
	}
	// Values a client sent for the consumer headers must not survive.
	for _, h := range []string{HeaderConsumerUsername, HeaderConsumerID, HeaderAnonymous} {
		if _, sent := common.Header(headers, h); sent {
			common.Must(Name, "removing "+h, proxywasm.RemoveHttpRequestHeader(h))
		}
	}
	if r.Anonymous {
		common.Must(Name, "setting anonymous", proxywasm.ReplaceHttpRequestHeader(HeaderAnonymous, "true"))
	}
	if r.Consumer != "" {
		common.Must(Name, "setting consumer", proxywasm.ReplaceHttpRequestHeader(HeaderConsumerUsername, r.Consumer))
		common.SetConsumer(Name, r.Consumer)
		common.Must(Name, "setting consumer id", proxywasm.ReplaceHttpRequestHeader(HeaderConsumerID, r.Consumer))
	}
	for _, h := range r.SetHeaders {
		common.Must(Name, "setting "+h[0], proxywasm.ReplaceHttpRequestHeader(h[0], h[1]))
	}
	return true
}

// OnHttpStreamDone forgets a stream whose client left while it waited.
func (s *stream) OnHttpStreamDone() { delete(s.p.waiting, s.id) }
