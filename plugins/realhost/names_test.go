package realhost

import (
	"slices"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
	"github.com/sluice-proxy/sluice/plugins/goref"
)

// Every name in plugins.Names() is a built-in sluice serves: the built-ins'
// module starts it, as root_id, with its smallest configuration on the
// real host, and the Go reference has a root context of that name for the
// side-by-side tests. An unknown root_id is refused by both, with its name.
func TestNamesMatchModules(t *testing.T) {
	if !slices.IsSorted(plugins.Names()) {
		t.Errorf("names are not sorted: %q", plugins.Names())
	}
	// The rate limiters refuse a configuration without a limit, as Kong
	// does.
	minimal := map[string]string{
		"rate-limiting":         `{"minute":1}`,
		"response-ratelimiting": `{"limits":{"sms":{"minute":1}}}`,
	}
	for _, name := range plugins.Names() {
		cfg, ok := minimal[name]
		if !ok {
			cfg = "{}"
		}
		if !plugins.Has(name) {
			t.Errorf("Has(%q) = false", name)
		}
		if _, err := filtertest.LoadErr(t, plugins.RustModule(name), filtertest.Options{RootID: name, Config: cfg}); err != nil {
			t.Errorf("%s: its module refused %s: %v", name, cfg, err)
		}
		if _, err := filtertest.LoadErr(t, goref.Module(), filtertest.Options{RootID: name, Config: cfg}); err != nil {
			t.Errorf("%s: the Go reference refused %s: %v", name, cfg, err)
		}
	}
	if plugins.Has("no-such-plugin") || plugins.RustModule("no-such-plugin") != nil {
		t.Error("no-such-plugin is a built-in")
	}
	_, err := filtertest.LoadErr(t, goref.Module(), filtertest.Options{RootID: "no-such-plugin", Config: "{}"})
	if err == nil || !strings.Contains(err.Error(), `no plugin with root_id "no-such-plugin"`) {
		t.Errorf("the Go reference with root_id no-such-plugin: %v, want a refusal naming it", err)
	}
	_, err = filtertest.LoadErr(t, plugins.RustModule("cors"), filtertest.Options{RootID: "no-such-plugin", Config: "{}"})
	if err == nil || !strings.Contains(err.Error(), `no built-in plugin "no-such-plugin"`) {
		t.Errorf("the built-ins' module with root_id no-such-plugin: %v, want a refusal naming it", err)
	}
}
