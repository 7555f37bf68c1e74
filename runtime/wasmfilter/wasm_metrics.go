package wasmfilter

import (
	"fmt"
	"sync"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// WasmMetrics puts plugin-defined metrics on the admin /metrics page: it is
// the hostabi.Metrics the runtime gives the engine. A name may carry labels
// in either of two ways: Prometheus's, `requests_total{route="orders"}`,
// or as "_key=value" segments (Envoy's stats tag convention), so
// "requests_total_route=orders" is requests_total{route="orders"} too.
type WasmMetrics struct {
	reg *stats.Registry

	mu      sync.RWMutex
	byName  map[wasmMetricKey]uint32
	entries []wasmMetric
}

type wasmMetricKey struct {
	kind hostabi.MetricType
	name string
}

type wasmMetric struct {
	kind      hostabi.MetricType
	counter   *stats.Counter
	gauge     *stats.Gauge
	histogram *stats.Histogram
}

// wasmHistogramBuckets: a filter records values in units of its choosing,
// so the buckets span many orders of magnitude.
var wasmHistogramBuckets = []float64{1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000, 500000, 1e6, 1e7}

// NewWasmMetrics returns a bridge to reg.
func NewWasmMetrics(reg *stats.Registry) *WasmMetrics {
	return &WasmMetrics{reg: reg, byName: map[wasmMetricKey]uint32{}}
}

// Define implements hostabi.Metrics. A name already registered with
// another kind (by sluice itself or another plugin) is refused rather than
// allowed to break the registry.
func (m *WasmMetrics) Define(kind hostabi.MetricType, name string) (id uint32, err error) {
	key := wasmMetricKey{kind, name}
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.byName[key]; ok {
		return id, nil
	}
	base, labels := metricNameLabels(name)
	want := map[hostabi.MetricType]stats.Kind{hostabi.Counter: stats.KindCounter, hostabi.Gauge: stats.KindGauge,
		hostabi.Histogram: stats.KindHistogram}[kind]
	if k, ok := m.reg.Has(base); ok && k != want {
		return 0, fmt.Errorf("metric %q is already a %s", base, k)
	}
	// The registry panics on a kind clash; one registered by another
	// goroutine between Has and here must not take the process down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("defining metric %q: %v", base, r)
		}
	}()
	e := wasmMetric{kind: kind}
	const help = "Defined by a Wasm plugin."
	switch kind {
	case hostabi.Counter:
		e.counter = m.reg.Counter(base, help, labels...)
	case hostabi.Gauge:
		e.gauge = m.reg.Gauge(base, help, labels...)
	case hostabi.Histogram:
		e.histogram = m.reg.Histogram(base, help, wasmHistogramBuckets, labels...)
	default:
		return 0, fmt.Errorf("metric kind %d", kind)
	}
	m.entries = append(m.entries, e)
	id = uint32(len(m.entries))<<2 | uint32(kind)
	m.byName[key] = id
	return id, nil
}

// metricNameLabels splits a plugin's metric name into the family name and
// label pairs, in whichever of the two styles it is written.
func metricNameLabels(name string) (base string, labels []string) {
	if base, labels, ok := stats.ParseLabeledName(name); ok {
		return stats.SanitizeName(base), labels
	}
	base, tags := hostabi.SplitMetricName(name)
	labels = make([]string, 0, 2*len(tags))
	for _, t := range tags {
		labels = append(labels, t[0], t[1])
	}
	return stats.SanitizeName(base), labels
}

func (m *WasmMetrics) entry(id uint32) (wasmMetric, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := int(id>>2) - 1
	if i < 0 || i >= len(m.entries) || uint32(m.entries[i].kind) != id&3 {
		return wasmMetric{}, hostabi.ErrNotFound
	}
	return m.entries[i], nil
}

// Increment implements hostabi.Metrics.
func (m *WasmMetrics) Increment(id uint32, delta int64) error {
	e, err := m.entry(id)
	if err != nil {
		return err
	}
	switch {
	case e.counter != nil && delta >= 0:
		e.counter.Add(delta)
	case e.gauge != nil:
		e.gauge.Add(delta)
	default:
		return fmt.Errorf("metric %d cannot be incremented by %d", id, delta)
	}
	return nil
}

// Record implements hostabi.Metrics: a gauge is set, a histogram observes.
func (m *WasmMetrics) Record(id uint32, value uint64) error {
	e, err := m.entry(id)
	if err != nil {
		return err
	}
	switch {
	case e.gauge != nil:
		e.gauge.Set(int64(value))
	case e.histogram != nil:
		e.histogram.Observe(float64(value))
	default:
		return fmt.Errorf("counter %d cannot be recorded", id)
	}
	return nil
}

// Get implements hostabi.Metrics for counters and gauges.
func (m *WasmMetrics) Get(id uint32) (uint64, error) {
	e, err := m.entry(id)
	if err != nil {
		return 0, err
	}
	switch {
	case e.counter != nil:
		return uint64(e.counter.Value()), nil
	case e.gauge != nil:
		return uint64(e.gauge.Value()), nil
	}
	return 0, fmt.Errorf("histogram %d cannot be read", id)
}
