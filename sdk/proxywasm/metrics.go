package proxywasm

import "github.com/sluice-proxy/sluice/sdk/internal/abi"

// Metrics live in the host, shared by every instance of the plugin; sluice
// shows them on the admin /metrics page. Define them once (OnPluginStart or
// the plugin context's constructor) and keep the handle.

const (
	metricCounter   uint32 = 0
	metricGauge     uint32 = 1
	metricHistogram uint32 = 2
)

// MetricCounter only goes up.
type MetricCounter uint32

// MetricGauge goes up and down.
type MetricGauge uint32

// MetricHistogram records a distribution of values.
type MetricHistogram uint32

func defineMetric(t uint32, name string) uint32 {
	var id uint32
	if err := statusToError(abi.ProxyDefineMetric(t, abi.StringPtr(name), uint32(len(name)), &id)); err != nil {
		LogError("defining metric " + quote(name) + ": " + err.Error())
	}
	return id
}

// DefineCounterMetric defines (or finds) a counter by name. A failure is
// logged and the handle is then inert.
func DefineCounterMetric(name string) MetricCounter {
	return MetricCounter(defineMetric(metricCounter, name))
}

// DefineGaugeMetric defines (or finds) a gauge by name.
func DefineGaugeMetric(name string) MetricGauge { return MetricGauge(defineMetric(metricGauge, name)) }

// DefineHistogramMetric defines (or finds) a histogram by name.
func DefineHistogramMetric(name string) MetricHistogram {
	return MetricHistogram(defineMetric(metricHistogram, name))
}

func (c MetricCounter) Increment(offset uint64) { abi.ProxyIncrementMetric(uint32(c), int64(offset)) }
func (c MetricCounter) Value() uint64           { return getMetric(uint32(c)) }
func (c MetricCounter) ID() uint32              { return uint32(c) }

func (g MetricGauge) Add(offset int64) { abi.ProxyIncrementMetric(uint32(g), offset) }
func (g MetricGauge) Set(value int64)  { abi.ProxyRecordMetric(uint32(g), uint64(value)) }
func (g MetricGauge) Value() int64     { return int64(getMetric(uint32(g))) }
func (g MetricGauge) ID() uint32       { return uint32(g) }

func (h MetricHistogram) Record(value uint64) { abi.ProxyRecordMetric(uint32(h), value) }
func (h MetricHistogram) Value() uint64       { return getMetric(uint32(h)) }
func (h MetricHistogram) ID() uint32          { return uint32(h) }

func getMetric(id uint32) uint64 {
	var v uint64
	if err := statusToError(abi.ProxyGetMetric(id, &v)); err != nil {
		return 0
	}
	return v
}
