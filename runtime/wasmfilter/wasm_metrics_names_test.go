package wasmfilter

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-proxy/sluice/hostabi"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// TestWasmMetricNameStyles: a plugin names a metric's labels either the
// Prometheus way (as the built-ins do) or Envoy's way, as "_key=value"
// segments; both come out as the family and labels they mean, and the page
// parses with Prometheus's own parser. (The built-ins' names used to be
// cut at "_" into sluice_fault_aborts_injected{total_plugin="\"chaos\"}"}.)
func TestWasmMetricNameStyles(t *testing.T) {
	reg := stats.NewRegistry()
	m := NewWasmMetrics(reg)
	for name, n := range map[string]int64{
		`sluice_fault_aborts_injected_total{plugin="chaos"}`:                        5,
		`sluice_rate_limiting_store_errors_total{plugin="limit",policy="redis"}`:    2,
		`sluice_rate_limiting_store_errors_total{plugin="my_limit",policy="local"}`: 1,
		"envoy_style_total_route=orders_code=200":                                   3,
		"wasm_instance_failures_total_plugin=my_filter_cause=trap":                  1,
		`quoted_total{plugin="a \"b\" c"}`:                                          1,
		"plain.name-with:odd_chars":                                                 1,
		`broken_label_block{plugin="x"`:                                             1,
	} {
		id, err := m.Define(hostabi.Counter, name)
		if err != nil {
			t.Fatalf("Define(%q): %v", name, err)
		}
		m.Increment(id, n)
	}
	var b strings.Builder
	if err := reg.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, b.String())
	}
	got := map[string]float64{}
	for name, f := range fams {
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			got[name+"{"+strings.Join(labels, ",")+"}"] = s.GetCounter().GetValue()
		}
	}
	for series, want := range map[string]float64{
		"sluice_fault_aborts_injected_total{plugin=chaos}":                      5,
		"sluice_rate_limiting_store_errors_total{plugin=limit,policy=redis}":    2,
		"sluice_rate_limiting_store_errors_total{plugin=my_limit,policy=local}": 1,
		"envoy_style_total{code=200,route=orders}":                              3,
		"wasm_instance_failures_total{cause=trap,plugin=my_filter}":             1,
		`quoted_total{plugin=a "b" c}`:                                          1,
		"plain_name_with:odd_chars{}":                                           1,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("series %s = %v (present %v), want %v; page:\n%s", series, v, ok, want, b.String())
		}
	}
}
