// Package stats is sluice's metrics registry: counters, gauges and
// histograms with fixed label sets, rendered in the Prometheus text format
// for the admin /metrics page. Hot-path updates are single atomic operations;
// looking a series up is done once, when a route or cluster is built.
package stats

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind is the Prometheus metric type of a family.
type Kind int

const (
	KindCounter Kind = iota
	KindGauge
	KindHistogram
)

func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	default:
		return "histogram"
	}
}

// DefaultLatencyBuckets are in seconds, from 0.5 ms to 10 s.
var DefaultLatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Registry holds metric families. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: map[string]*family{}} }

type family struct {
	name, help string
	kind       Kind
	buckets    []float64
	series     map[string]any // label string -> *Counter / *Gauge / *Histogram
	// fn, when set, reports the family's series at scrape time (Func).
	fn func() []Sample
}

// Sample is one series of a family read at scrape time: label pairs and
// the value.
type Sample struct {
	Labels []string
	Value  float64
}

// Func registers a counter or gauge family whose series fn reports each
// time the page is written, for figures another component already keeps
// (a plugin's instances, its failures). Registering the name again
// replaces fn. fn runs without the registry's lock held.
func (r *Registry) Func(name, help string, kind Kind, fn func() []Sample) {
	if kind == KindHistogram {
		panic(fmt.Sprintf("stats: metric %q: a func family is a counter or a gauge", name))
	}
	name = SanitizeName(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.families[name]; ok && (f.fn == nil || f.kind != kind) {
		panic(fmt.Sprintf("stats: metric %q already registered as another %s", name, f.kind))
	}
	r.families[name] = &family{name: name, help: help, kind: kind, fn: fn}
}

// Counter is a monotonically increasing value.
type Counter struct{ v atomic.Int64 }

func (c *Counter) Inc()         { c.v.Add(1) }
func (c *Counter) Add(n int64)  { c.v.Add(n) }
func (c *Counter) Value() int64 { return c.v.Load() }

// Gauge is a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

func (g *Gauge) Set(n int64)  { g.v.Store(n) }
func (g *Gauge) Add(n int64)  { g.v.Add(n) }
func (g *Gauge) Value() int64 { return g.v.Load() }

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	bounds  []float64
	counts  []atomic.Uint64 // one per bound, plus +Inf
	count   atomic.Uint64
	sumBits atomic.Uint64
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Sum is the total of observations.
func (h *Histogram) Sum() float64 { return math.Float64frombits(h.sumBits.Load()) }

// Counter returns the counter for name and label pairs ("k1", "v1", ...),
// creating it on first use. It panics if name was registered with another
// kind: that is a programming error, not an input error.
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	return r.series(name, help, KindCounter, nil, labels, func() any { return &Counter{} }).(*Counter)
}

// Gauge returns the gauge for name and label pairs.
func (r *Registry) Gauge(name, help string, labels ...string) *Gauge {
	return r.series(name, help, KindGauge, nil, labels, func() any { return &Gauge{} }).(*Gauge)
}

// Histogram returns the histogram for name and label pairs; buckets nil
// means DefaultLatencyBuckets.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *Histogram {
	if buckets == nil {
		buckets = DefaultLatencyBuckets
	}
	for i := 0; i < len(labels); i += 2 {
		if labelName(labels[i]) == "le" {
			// "le" is the bucket bound's label; a series of its own named
			// le would make every bucket line repeat it.
			labels = append([]string(nil), labels...)
			labels[i] = "le_"
		}
	}
	return r.series(name, help, KindHistogram, buckets, labels, func() any {
		return &Histogram{bounds: buckets, counts: make([]atomic.Uint64, len(buckets)+1)}
	}).(*Histogram)
}

// Has reports whether a family exists and its kind.
func (r *Registry) Has(name string) (Kind, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.families[name]
	if !ok {
		return 0, false
	}
	return f.kind, true
}

func (r *Registry) series(name, help string, kind Kind, buckets []float64, labels []string, mk func() any) any {
	if len(labels)%2 != 0 {
		panic(fmt.Sprintf("stats: metric %q: odd number of label strings", name))
	}
	// Families are keyed by the name as exposed, so two names that differ
	// only in characters Prometheus does not allow ("a-b", "a.b") are one
	// family, not two with the same TYPE line.
	name = SanitizeName(name)
	key := labelString(labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.families[name]
	if !ok {
		f = &family{name: name, help: help, kind: kind, buckets: buckets, series: map[string]any{}}
		r.families[name] = f
	} else if f.kind != kind || f.fn != nil {
		panic(fmt.Sprintf("stats: metric %q registered as %s, asked for as %s", name, f.kind, kind))
	}
	s, ok := f.series[key]
	if !ok {
		s = mk()
		f.series[key] = s
	}
	return s
}

// labelString renders label pairs as the exposition writes them. A label
// name given twice keeps its last value (a series may not repeat a label);
// names are made valid, and one Prometheus reserves ("__" prefix) gets a
// letter in front.
func labelString(labels []string) string {
	if len(labels) == 0 {
		return ""
	}
	names := make([]string, 0, len(labels)/2)
	values := make(map[string]string, len(labels)/2)
	for i := 0; i < len(labels); i += 2 {
		n := labelName(labels[i])
		if _, dup := values[n]; !dup {
			names = append(names, n)
		}
		values[n] = labels[i+1]
	}
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[n]))
		b.WriteByte('"')
	}
	return b.String()
}

func labelName(s string) string {
	n := strings.ReplaceAll(SanitizeName(s), ":", "_") // colons are for metric names only
	if strings.HasPrefix(n, "__") {
		n = "l" + n
	}
	return n
}

// ParseLabeledName reads a metric name written the Prometheus way, with
// its labels: `requests_total{route="orders",code="2xx"}` is
// "requests_total" and the pairs route, orders, code, 2xx (values may use
// the exposition format's escapes \\, \" and \n). ok is false when name has
// no label block or it does not parse; the caller then treats name as a
// bare name (or by another convention).
func ParseLabeledName(name string) (base string, labels []string, ok bool) {
	open := strings.IndexByte(name, '{')
	if open <= 0 || !strings.HasSuffix(name, "}") {
		return "", nil, false
	}
	base, rest := name[:open], name[open+1:len(name)-1]
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return "", nil, false
		}
		key := strings.TrimSpace(rest[:eq])
		rest = strings.TrimLeft(rest[eq+1:], " ")
		if rest == "" || rest[0] != '"' {
			return "", nil, false
		}
		var v strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			c := rest[i]
			if c == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case 'n':
					c = '\n'
				default:
					c = rest[i]
				}
			}
			v.WriteByte(c)
		}
		if i == len(rest) || key == "" {
			return "", nil, false // unterminated value
		}
		labels = append(labels, key, v.String())
		rest = strings.TrimSpace(rest[i+1:])
		if rest != "" {
			if rest[0] != ',' {
				return "", nil, false
			}
			rest = strings.TrimSpace(rest[1:])
		}
	}
	return base, labels, true
}

func escapeLabel(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(v)
}

// SanitizeName maps any string to a valid Prometheus metric or label name.
func SanitizeName(s string) string {
	ok := true
	for i, c := range s {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			ok = false
			break
		}
	}
	if ok && s != "" {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// WritePrometheus writes every family in the text exposition format,
// families and series sorted so the page is stable.
func (r *Registry) WritePrometheus(w io.Writer) error {
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	sort.Strings(names)
	type snap struct {
		f    *family
		keys []string
		vals []any
	}
	snaps := make([]snap, 0, len(names))
	for _, n := range names {
		f := r.families[n]
		s := snap{f: f}
		for k := range f.series {
			s.keys = append(s.keys, k)
		}
		sort.Strings(s.keys)
		for _, k := range s.keys {
			s.vals = append(s.vals, f.series[k])
		}
		snaps = append(snaps, s)
	}
	r.mu.Unlock()
	for i := range snaps {
		if fn := snaps[i].f.fn; fn != nil {
			snaps[i].keys, snaps[i].vals = funcSeries(fn())
		}
	}

	var b strings.Builder
	for _, s := range snaps {
		name := SanitizeName(s.f.name)
		if s.f.help != "" {
			fmt.Fprintf(&b, "# HELP %s %s\n", name, strings.ReplaceAll(s.f.help, "\n", " "))
		}
		fmt.Fprintf(&b, "# TYPE %s %s\n", name, s.f.kind)
		for i, key := range s.keys {
			switch v := s.vals[i].(type) {
			case *Counter:
				writeSample(&b, name, "", key, strconv.FormatInt(v.Value(), 10))
			case *Gauge:
				writeSample(&b, name, "", key, strconv.FormatInt(v.Value(), 10))
			case float64:
				writeSample(&b, name, "", key, strconv.FormatFloat(v, 'g', -1, 64))
			case *Histogram:
				var cum uint64
				for j, bound := range v.bounds {
					cum += v.counts[j].Load()
					writeSample(&b, name+"_bucket", `le="`+strconv.FormatFloat(bound, 'g', -1, 64)+`"`, key, strconv.FormatUint(cum, 10))
				}
				cum += v.counts[len(v.bounds)].Load()
				writeSample(&b, name+"_bucket", `le="+Inf"`, key, strconv.FormatUint(cum, 10))
				writeSample(&b, name+"_sum", "", key, strconv.FormatFloat(v.Sum(), 'g', -1, 64))
				writeSample(&b, name+"_count", "", key, strconv.FormatUint(cum, 10))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// funcSeries renders a func family's samples as sorted label strings and
// values; a label set reported twice keeps its last value.
func funcSeries(samples []Sample) (keys []string, vals []any) {
	byKey := make(map[string]float64, len(samples))
	for _, s := range samples {
		if len(s.Labels)%2 != 0 {
			continue
		}
		byKey[labelString(s.Labels)] = s.Value
	}
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals = append(vals, byKey[k])
	}
	return keys, vals
}

func writeSample(b *strings.Builder, name, extra, labels, value string) {
	b.WriteString(name)
	if labels != "" || extra != "" {
		b.WriteByte('{')
		b.WriteString(labels)
		if labels != "" && extra != "" {
			b.WriteByte(',')
		}
		b.WriteString(extra)
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(value)
	b.WriteByte('\n')
}
