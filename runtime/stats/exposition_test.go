package stats

import (
	"reflect"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseExposition parses a /metrics page as Prometheus does, with its
// classic (legacy) name rules, the strictest.
func parseExposition(t *testing.T, page string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		t.Fatalf("not valid Prometheus text exposition: %v\n%s", err, page)
	}
	return fams
}

// labelsOf renders a sample's labels as "k=v,k=v" for comparisons.
func labelsOf(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

// TestExpositionIsValid feeds the registry names and labels a plugin (or
// a config) may bring, and parses the page with Prometheus's own parser.
func TestExpositionIsValid(t *testing.T) {
	r := NewRegistry()
	r.Counter("requests-total", "Dashes.", "route", "a").Add(1)
	r.Counter("requests.total", "Dots: the same family once sanitized.", "route", "b").Add(2)
	r.Counter("dup_labels_total", "", "k", "first", "k", "second").Inc()
	r.Gauge("reserved", "", "__name__", "x", "a:b", "colon", "9lives", "digit").Set(4)
	r.Gauge("odd_values", "", "v", "quote\" backslash\\ newline\n").Set(1)
	h := r.Histogram("lat", "", []float64{1}, "le", "user")
	h.Observe(0.5)
	var b strings.Builder
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	fams := parseExposition(t, b.String())

	series := map[string]string{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			series[name+"{"+labelsOf(m)+"}"] = f.GetType().String()
		}
	}
	for _, want := range []string{
		"requests_total{route=a}", "requests_total{route=b}",
		"dup_labels_total{k=second}",
		"reserved{l__name__=x,a_b=colon,_lives=digit}",
		"odd_values{v=quote\" backslash\\ newline\n}",
		"lat{le_=user}",
	} {
		if _, ok := series[want]; !ok {
			t.Errorf("no series %q; have %v", want, reflect.ValueOf(series).MapKeys())
		}
	}
}

func TestParseLabeledName(t *testing.T) {
	for _, tt := range []struct {
		in     string
		base   string
		labels []string
		ok     bool
	}{
		{`sluice_fault_aborts_injected_total{plugin="chaos"}`, "sluice_fault_aborts_injected_total", []string{"plugin", "chaos"}, true},
		{`x_total{plugin="a",policy="redis"}`, "x_total", []string{"plugin", "a", "policy", "redis"}, true},
		{`x{ a = "1" , b="2" }`, "x", []string{"a", "1", "b", "2"}, true},
		{`x{v="q\"uote\\n"}`, "x", []string{"v", `q"uote\n`}, true},
		{`x{}`, "x", nil, true},
		{`requests_total_route=orders`, "", nil, false},
		{`x{a="1"`, "", nil, false},
		{`x{a=1}`, "", nil, false},
		{`x{a="1"b="2"}`, "", nil, false},
		{`x{="1"}`, "", nil, false},
		{`{a="1"}`, "", nil, false},
		{`x{a="unterminated}`, "", nil, false},
	} {
		base, labels, ok := ParseLabeledName(tt.in)
		if base != tt.base || ok != tt.ok || !reflect.DeepEqual(labels, tt.labels) {
			t.Errorf("ParseLabeledName(%q) = %q, %q, %v; want %q, %q, %v", tt.in, base, labels, ok, tt.base, tt.labels, tt.ok)
		}
	}
}

// TestFuncFamilies: a func family's series are read when the page is
// written, rendered like the others and parse.
func TestFuncFamilies(t *testing.T) {
	r := NewRegistry()
	n := 1.0
	r.Func("plugin_instances", "Instances.", KindGauge, func() []Sample {
		return []Sample{{Labels: []string{"plugin", "b"}, Value: n}, {Labels: []string{"plugin", "a"}, Value: 2 * n}}
	})
	r.Func("plugin_failures_total", "Failures.", KindCounter, func() []Sample { return []Sample{{Value: 4}} })
	n = 3
	var b strings.Builder
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	fams := parseExposition(t, b.String())
	got := map[string]float64{}
	for _, m := range fams["plugin_instances"].GetMetric() {
		got[labelsOf(m)] = m.GetGauge().GetValue()
	}
	if got["plugin=a"] != 6 || got["plugin=b"] != 3 || fams["plugin_instances"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("plugin_instances = %v (%v), want a=6 b=3, a gauge", got, fams["plugin_instances"].GetType())
	}
	if f, ok := fams["plugin_failures_total"]; !ok || f.GetType() != dto.MetricType_COUNTER || f.GetMetric()[0].GetCounter().GetValue() != 4 {
		t.Errorf("a func counter family without labels: %v", f)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a plain counter over a func family's name was allowed")
			}
		}()
		r.Counter("plugin_failures_total", "")
	}()
}
