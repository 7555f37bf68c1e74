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
	"github.com/sluice-proxy/sluice/plugins/goref"
)

// Every TOML example in the plugins README parses, and every built-in it
// configures accepts its configuration on sluice's host, in the module
// sluice serves it from and in its Go original, so the documentation
// cannot drift from the code; every built-in has an example.
func TestReadmeExamples(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(b, -1)
	if len(blocks) < len(plugins.Names()) {
		t.Fatalf("%d TOML examples for %d plugins", len(blocks), len(plugins.Names()))
	}
	checked := map[string]bool{}
	for i, m := range blocks {
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
			if !ok {
				continue
			}
			if !plugins.Has(name) {
				t.Errorf("example %d: %s is no built-in", i, p.Wasm)
				continue
			}
			cfg, err := json.Marshal(p.Config)
			if err != nil {
				t.Fatal(err)
			}
			o := filtertest.Options{Name: name, RootID: name, Config: cfg}
			if _, err := filtertest.LoadErr(t, plugins.RustModule(name), o); err != nil {
				t.Errorf("example %d: %s (Rust) refuses %s: %v", i, name, cfg, err)
			}
			if _, err := filtertest.LoadErr(t, goref.Module(), o); err != nil {
				t.Errorf("example %d: %s (Go) refuses %s: %v", i, name, cfg, err)
			}
			checked[name] = true
		}
	}
	for _, n := range plugins.Names() {
		if !checked[n] {
			t.Errorf("the README has no example for %s", n)
		}
	}
}
