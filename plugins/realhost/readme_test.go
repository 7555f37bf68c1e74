package realhost

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
)

// Every TOML example in the plugins README that configures a built-in
// served by a Rust module is accepted by that module on sluice's host
// (the Go module's acceptance is plugins.TestReadmeExamples).
func TestReadmeExamplesInRust(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for i, m := range regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(b, -1) {
		var doc struct {
			Plugins []struct {
				Wasm   string
				Config map[string]any
			}
		}
		if _, err := toml.Decode(string(m[1]), &doc); err != nil {
			t.Errorf("example %d does not parse: %v", i, err)
			continue
		}
		for _, p := range doc.Plugins {
			name, ok := strings.CutPrefix(p.Wasm, "builtin:")
			if !ok || plugins.RustModule(name) == nil {
				continue
			}
			cfg, err := json.Marshal(p.Config)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := filtertest.LoadErr(t, plugins.RustModule(name), filtertest.Options{Name: name, RootID: name, Config: cfg}); err != nil {
				t.Errorf("example %d: %s (Rust) refuses %s: %v", i, name, cfg, err)
			}
			checked[name] = true
		}
	}
	for _, n := range plugins.RustNames() {
		if !checked[n] {
			t.Errorf("the README has no example for %s", n)
		}
	}
}
