package realhost

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
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
			if !strings.HasPrefix(p.Wasm, "builtin:") {
				continue
			}
			name := expectAccepted(t, fmt.Sprintf("example %d", i), p.Wasm, p.Config)
			checked[name] = true
		}
	}
	for _, n := range plugins.Names() {
		if !checked[n] {
			t.Errorf("the README has no example for %s", n)
		}
	}
}

// expectAccepted checks that a configuration of a built-in (wasm =
// "builtin:NAME") is taken by each of its modules; where says whence it
// came. It returns the built-in's name.
func expectAccepted(t *testing.T, where, wasm string, config map[string]any) string {
	t.Helper()
	name := strings.TrimPrefix(wasm, "builtin:")
	if !plugins.Has(name) {
		t.Errorf("%s: %s is no built-in", where, wasm)
		return ""
	}
	cfg, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modules(name) {
		if _, err := filtertest.LoadErr(t, m.wasm, filtertest.Options{Name: name, RootID: name, Config: cfg}); err != nil {
			t.Errorf("%s: %s (%s) refuses %s: %v", where, name, m.lang, cfg, err)
		}
	}
	return name
}
