package hostabi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

func metricStatus(err error) abi.Status {
	switch {
	case err == nil:
		return abi.OK
	case errors.Is(err, ErrNotFound):
		return abi.NotFound
	default:
		return abi.BadArgument
	}
}

func hcDefineMetric(_ context.Context, in *instance, a []uint64) abi.Status {
	kind := abi.MetricType(a[0])
	if kind > abi.MetricHistogram {
		return abi.BadArgument
	}
	name, err := in.readString(u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	if !in.fits(u32(a[3]), 4) {
		return abi.InvalidMemoryAccess
	}
	id, err := in.vm.e.cfg.Metrics.Define(kind, name)
	if err != nil {
		return metricStatus(err)
	}
	_ = in.putU32(u32(a[3]), id)
	return abi.OK
}

func hcIncrementMetric(_ context.Context, in *instance, a []uint64) abi.Status {
	return metricStatus(in.vm.e.cfg.Metrics.Increment(u32(a[0]), int64(a[1])))
}

func hcRecordMetric(_ context.Context, in *instance, a []uint64) abi.Status {
	return metricStatus(in.vm.e.cfg.Metrics.Record(u32(a[0]), a[1]))
}

func hcGetMetric(_ context.Context, in *instance, a []uint64) abi.Status {
	if !in.fits(u32(a[1]), 8) {
		return abi.InvalidMemoryAccess
	}
	v, err := in.vm.e.cfg.Metrics.Get(u32(a[0]))
	if err != nil {
		return metricStatus(err)
	}
	_ = in.putU64(u32(a[1]), v)
	return abi.OK
}

// MemoryMetrics is an in-process Metrics, for tests and for a runtime that
// scrapes it (Snapshot). Ids carry the kind in their low two bits, as in
// proxy-wasm-cpp-host, so a wrong-kind call is caught without a lookup.
type MemoryMetrics struct {
	mu     sync.RWMutex
	byName map[string]uint32
	byID   map[uint32]*memMetric
	next   uint32
}

type memMetric struct {
	kind  MetricType
	name  string
	value atomic.Int64
	// Histograms keep count and sum; a real exporter keeps buckets.
	count atomic.Uint64
}

// MetricValue is one metric in a Snapshot.
type MetricValue struct {
	Kind  MetricType
	Name  string
	Value int64  // counter or gauge value; histogram sum
	Count uint64 // histogram observations
}

// NewMemoryMetrics returns an empty registry.
func NewMemoryMetrics() *MemoryMetrics {
	return &MemoryMetrics{byName: map[string]uint32{}, byID: map[uint32]*memMetric{}}
}

// Define implements Metrics.
func (m *MemoryMetrics) Define(kind MetricType, name string) (uint32, error) {
	if kind > Histogram || name == "" {
		return 0, errors.New("bad metric")
	}
	key := string(rune('0'+kind)) + name
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.byName[key]; ok {
		return id, nil
	}
	m.next++
	id := m.next<<2 | uint32(kind)
	m.byName[key] = id
	m.byID[id] = &memMetric{kind: kind, name: name}
	return id, nil
}

func (m *MemoryMetrics) get(id uint32) *memMetric {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byID[id]
}

// Increment implements Metrics.
func (m *MemoryMetrics) Increment(id uint32, delta int64) error {
	mm := m.get(id)
	if mm == nil {
		return ErrNotFound
	}
	if mm.kind == Histogram || (mm.kind == Counter && delta < 0) {
		return errors.New("bad increment")
	}
	mm.value.Add(delta)
	return nil
}

// Record implements Metrics.
func (m *MemoryMetrics) Record(id uint32, v uint64) error {
	mm := m.get(id)
	if mm == nil {
		return ErrNotFound
	}
	switch mm.kind {
	case Histogram:
		mm.value.Add(int64(v))
		mm.count.Add(1)
	default:
		mm.value.Store(int64(v))
	}
	return nil
}

// Get implements Metrics.
func (m *MemoryMetrics) Get(id uint32) (uint64, error) {
	mm := m.get(id)
	if mm == nil {
		return 0, ErrNotFound
	}
	if mm.kind == Histogram {
		return 0, errors.New("histograms cannot be read")
	}
	return uint64(mm.value.Load()), nil
}

// Snapshot returns every metric.
func (m *MemoryMetrics) Snapshot() []MetricValue {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]MetricValue, 0, len(m.byID))
	for _, mm := range m.byID {
		out = append(out, MetricValue{Kind: mm.kind, Name: mm.name, Value: mm.value.Load(), Count: mm.count.Load()})
	}
	return out
}

// SplitMetricName splits the "_key=value" tag segments off a metric name,
// the convention Envoy filters use with stats tag extraction:
// "requests_total_route=orders_code=200" is "requests_total" with labels
// route="orders" and code="200". A segment without "=" belongs to the name
// or, after a tag, to that tag's value ("route=a_b" keeps "a_b").
func SplitMetricName(name string) (base string, labels [][2]string) {
	parts := strings.Split(name, "_")
	var baseParts []string
	for _, part := range parts {
		k, v, ok := strings.Cut(part, "=")
		switch {
		case ok && k != "":
			labels = append(labels, [2]string{k, v})
		case len(labels) > 0:
			labels[len(labels)-1][1] += "_" + part
		default:
			baseParts = append(baseParts, part)
		}
	}
	return strings.Join(baseParts, "_"), labels
}
