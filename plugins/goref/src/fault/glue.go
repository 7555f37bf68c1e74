package fault

import (
	"math/rand"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// New makes the plugin's root context.
func New(uint32) types.PluginContext { return &plugin{pending: map[uint32]*stream{}} }

// plugin resumes delayed streams from OnTick: a paused stream cannot wake
// itself, and the ABI has no per-stream timer.
type plugin struct {
	types.DefaultPluginContext
	in      *Injector
	pending map[uint32]*stream
	delayed proxywasm.MetricCounter
	aborted proxywasm.MetricCounter
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	ok := common.LoadConfig(Name, func(b []byte) (err error) {
		p.in, err = Parse(b)
		return err
	})
	if !ok {
		return types.OnPluginStartStatusFailed
	}
	if p.in.HasDelay() {
		if err := proxywasm.SetTickPeriodMilliSeconds(uint32(p.in.TickPeriod().Milliseconds())); err != nil {
			proxywasm.LogCriticalf("%s: delays need ticks: %v", Name, err)
			return types.OnPluginStartStatusFailed
		}
	}
	name, _ := proxywasm.GetPluginName()
	p.delayed = proxywasm.DefineCounterMetric("sluice_fault_delays_injected_total{plugin=\"" + name + "\"}")
	p.aborted = proxywasm.DefineCounterMetric("sluice_fault_aborts_injected_total{plugin=\"" + name + "\"}")
	return types.OnPluginStartStatusOK
}

func (p *plugin) OnTick() {
	if len(p.pending) == 0 {
		return
	}
	now := common.NowNanos()
	for id, s := range p.pending {
		if now < s.wakeAt {
			continue
		}
		delete(p.pending, id)
		if err := proxywasm.SetEffectiveContext(id); err != nil {
			proxywasm.LogWarnf("%s: stream %d gone before its delay ended: %v", Name, id, err)
			continue
		}
		s.afterDelay()
	}
}

func (p *plugin) NewHttpContext(id uint32) types.HttpContext { return &stream{p: p, id: id} }

type stream struct {
	types.DefaultHttpContext
	p      *plugin
	id     uint32
	f      Fault
	wakeAt int64
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	s.f = s.p.in.Decide(common.RequestHeaders(Name), rand.Float64()*100, rand.Float64()*100)
	if s.f.Delay > 0 {
		s.p.delayed.Increment(1)
		s.wakeAt = common.NowNanos() + int64(s.f.Delay)
		s.p.pending[s.id] = s
		return types.ActionPause
	}
	if s.f.Abort.Status != 0 {
		s.abort()
		return types.ActionPause
	}
	return types.ActionContinue
}

func (s *stream) afterDelay() {
	if s.f.Abort.Status != 0 {
		s.abort()
		return
	}
	common.Must(Name, "resuming a delayed request", proxywasm.ResumeHttpRequest())
}

func (s *stream) abort() {
	s.p.aborted.Increment(1)
	r := s.f.Abort
	common.Must(Name, "sending the abort", proxywasm.SendHttpResponse(r.Status, r.Headers, r.Body, s.f.GrpcStatus))
}

// OnHttpStreamDone forgets a stream whose client left during its delay.
func (s *stream) OnHttpStreamDone() { delete(s.p.pending, s.id) }
