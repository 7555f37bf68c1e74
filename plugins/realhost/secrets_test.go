package realhost

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/plugins"
	"github.com/sluice-proxy/sluice/plugins/filtertest"
	"github.com/sluice-proxy/sluice/plugins/goref"
)

// Every configuration of the plugins' testdata/secrets.toml (one a
// built-in, with each declared secret in it) is taken by the module
// sluice serves it from and by its Go original, so the secrets declared
// in plugins.Secrets sit at keys the plugins really take (unknown keys
// are refused); plugins.TestSecretsDeclared checks the declarations
// against the file.
func TestSecretsAccepted(t *testing.T) {
	var file struct {
		Plugins []struct {
			Wasm   string
			Config map[string]any
		}
	}
	if _, err := toml.DecodeFile("../testdata/secrets.toml", &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Plugins) == 0 {
		t.Fatal("no plugins in testdata/secrets.toml")
	}
	for _, p := range file.Plugins {
		name := strings.TrimPrefix(p.Wasm, "builtin:")
		if !plugins.Has(name) {
			t.Errorf("%s is no built-in", p.Wasm)
			continue
		}
		cfg, err := json.Marshal(p.Config)
		if err != nil {
			t.Fatal(err)
		}
		o := filtertest.Options{Name: name, RootID: name, Config: cfg}
		if _, err := filtertest.LoadErr(t, plugins.RustModule(name), o); err != nil {
			t.Errorf("%s (Rust) refuses %s: %v", name, cfg, err)
		}
		if _, err := filtertest.LoadErr(t, goref.Module(), o); err != nil {
			t.Errorf("%s (Go) refuses %s: %v", name, cfg, err)
		}
	}
}
