package realhost

import (
	"testing"

	"github.com/BurntSushi/toml"
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
		expectAccepted(t, "testdata/secrets.toml", p.Wasm, p.Config)
	}
}
