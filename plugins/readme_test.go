package plugins

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// Every TOML example in README.md must parse, and every built-in plugin it
// configures must accept its configuration, so the documentation cannot
// drift from the code.
func TestReadmeExamples(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(b, -1)
	if len(blocks) < len(names) {
		t.Fatalf("%d TOML examples for %d plugins", len(blocks), len(names))
	}
	g := newGuest(t)
	// The built-ins served from Rust modules check each example on the
	// real host (realhost.TestReadmeExamplesInRust): jwt's asks the host
	// to check its public keys.
	documented := map[string]bool{}
	for i, m := range blocks {
		var doc struct {
			Plugins []struct {
				Name   string
				Wasm   string
				Config map[string]any
			}
		}
		if _, err := toml.Decode(string(m[1]), &doc); err != nil {
			t.Errorf("example %d does not parse: %v\n%s", i, err, m[1])
			continue
		}
		for _, p := range doc.Plugins {
			builtin, ok := strings.CutPrefix(p.Wasm, "builtin:")
			if !ok {
				continue
			}
			documented[builtin] = true
			cfg, err := json.Marshal(p.Config)
			if err != nil {
				t.Fatal(err)
			}
			g.h.logs = nil
			if _, ok := g.startPlugin(builtin, string(cfg)); !ok {
				t.Errorf("example %d: %s refuses %s: %q", i, builtin, cfg, g.h.logs)
			}
		}
	}
	for _, n := range names {
		if !documented[n] {
			t.Errorf("README has no example for %s", n)
		}
	}
}
