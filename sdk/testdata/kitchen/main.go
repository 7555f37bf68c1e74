// Command kitchen exercises most of the SDK in one filter, for tests that
// run it on a real host (plugins/realhost): every result it observes is
// reported in a request header, x-k-<what>: ok or what went wrong.
package main

import (
	"errors"
	"strconv"

	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.RegisterPlugin("kitchen", func(uint32) types.PluginContext { return &root{} })
}

type root struct {
	types.DefaultPluginContext
	config     string
	queue      uint32
	ready      int
	requests   proxywasm.MetricCounter
	inflight   proxywasm.MetricGauge
	sizes      proxywasm.MetricHistogram
	queueReady proxywasm.MetricCounter
}

func (r *root) OnPluginStart(int) types.OnPluginStartStatus {
	c, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		return types.OnPluginStartStatusFailed
	}
	r.config = string(c)
	if r.queue, err = proxywasm.RegisterSharedQueue("kitchen-q"); err != nil {
		proxywasm.LogCriticalf("registering queue: %v", err)
		return types.OnPluginStartStatusFailed
	}
	r.requests = proxywasm.DefineCounterMetric("kitchen_requests_total")
	r.inflight = proxywasm.DefineGaugeMetric("kitchen_inflight")
	r.sizes = proxywasm.DefineHistogramMetric("kitchen_sizes")
	r.queueReady = proxywasm.DefineCounterMetric("kitchen_queue_ready_total")
	return types.OnPluginStartStatusOK
}

func (r *root) OnQueueReady(id uint32) {
	if id == r.queue {
		r.queueReady.Increment(1)
	}
}

func (r *root) NewHttpContext(uint32) types.HttpContext { return &stream{r: r} }

type stream struct {
	types.DefaultHttpContext
	r *root
}

func report(what string, err error) {
	v := "ok"
	if err != nil {
		v = err.Error()
	}
	_ = proxywasm.ReplaceHttpRequestHeader("x-k-"+what, v)
}

func expect(cond bool, msg string) error {
	if cond {
		return nil
	}
	return errors.New(msg)
}

func (s *stream) OnHttpRequestHeaders(n int, eos bool) types.Action {
	r := s.r
	hs, err := proxywasm.GetHttpRequestHeaders()
	report("headers", errors.Join(err, expect(len(hs) == n, "count "+strconv.Itoa(len(hs))+" != "+strconv.Itoa(n))))

	v, err := proxywasm.GetHttpRequestHeader("x-in")
	report("get", errors.Join(err, expect(v == "1", "x-in = "+v)))
	_, err = proxywasm.GetHttpRequestHeader("x-absent")
	report("notfound", expect(errors.Is(err, types.ErrorStatusNotFound), "absent header: "+errString(err)))
	report("remove", proxywasm.RemoveHttpRequestHeader("x-drop"))
	report("add", proxywasm.AddHttpRequestHeader("x-added", "a"))

	report("config", expect(r.config == `{"k":"v"}`, "config = "+r.config))

	// Shared data with CAS.
	key := "kitchen/k"
	err = proxywasm.SetSharedData(key, []byte("one"), 0)
	val, cas, err2 := proxywasm.GetSharedData(key)
	err3 := proxywasm.SetSharedData(key, []byte("two"), cas+1000)
	err4 := proxywasm.SetSharedData(key, []byte("two"), cas)
	report("shared", errors.Join(err, err2, expect(string(val) == "one", "value "+string(val)),
		expect(errors.Is(err3, types.ErrorStatusCasMismatch), "stale cas: "+errString(err3)), err4))

	// Queues.
	err = proxywasm.EnqueueSharedQueue(r.queue, []byte("item"))
	item, err2 := proxywasm.DequeueSharedQueue(r.queue)
	_, err3 = proxywasm.DequeueSharedQueue(r.queue)
	report("queue", errors.Join(err, err2, expect(string(item) == "item", "item "+string(item)),
		expect(errors.Is(err3, types.ErrorStatusEmpty), "empty queue: "+errString(err3))))

	// Metrics.
	r.requests.Increment(1)
	r.inflight.Set(5)
	r.inflight.Add(-2)
	r.sizes.Record(7)
	report("metrics", errors.Join(expect(r.requests.Value() >= 1, "counter"), expect(r.inflight.Value() == 3, "gauge "+strconv.FormatInt(r.inflight.Value(), 10))))

	// Properties.
	port, err := proxywasm.GetSourcePort()
	ip, err2 := proxywasm.GetSourceIP()
	root, err3 := proxywasm.GetPluginRootID()
	report("props", errors.Join(err, err2, err3, expect(port == 40000, "port "+strconv.FormatInt(port, 10)),
		expect(ip == "127.0.0.1", "ip "+ip), expect(root == "kitchen", "root_id "+root)))
	report("setprop", proxywasm.SetProperty([]string{"kitchen", "seen"}, []byte("yes")))
	seen, err := proxywasm.GetPropertyString("kitchen", "seen")
	report("getprop", errors.Join(err, expect(seen == "yes", "seen "+seen)))

	level, err := proxywasm.GetLogLevel()
	report("loglevel", errors.Join(err, expect(level <= types.LogLevelCritical, "level")))
	proxywasm.LogInfof("kitchen request %d", r.requests.Value())

	t, err := proxywasm.GetCurrentTimeNanoseconds()
	report("time", errors.Join(err, expect(t > 1_600_000_000_000_000_000, "clock")))
	return types.ActionContinue
}

func (s *stream) OnHttpRequestBody(size int, eos bool) types.Action {
	if !eos {
		return types.ActionPause
	}
	b, err := proxywasm.GetHttpRequestBody(0, size)
	if err == nil {
		err = proxywasm.ReplaceHttpRequestBody(append([]byte("<"), append(b, '>')...))
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	_ = proxywasm.ReplaceHttpResponseHeader("x-k-response", "ok")
	_ = proxywasm.RemoveHttpResponseHeader("server")
	return types.ActionContinue
}

func (s *stream) OnHttpResponseBody(size int, eos bool) types.Action {
	if eos {
		_ = proxywasm.AppendHttpResponseBody([]byte("!"))
		_ = proxywasm.PrependHttpResponseBody([]byte("^"))
	}
	return types.ActionContinue
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
