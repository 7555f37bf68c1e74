// Package plugins embeds sluice's built-in policy filters: one proxy-wasm
// module (built from ./src with the sluice SDK) in which each plugin is a
// root context selected by root_id = the plugin's name. Configuration
// "wasm = \"builtin:NAME\"" loads Module() with root_id NAME.
package plugins

import (
	_ "embed"
	"slices"
)

//go:generate make build

//go:embed builtin.wasm
var module []byte

// Module returns the compiled built-in module. The slice is shared: callers
// must not modify it.
func Module() []byte { return module }

// names must match the registrations in src/main.go; TestNamesMatchModule
// loads the module and checks each one.
var names = []string{
	"add-header",
	"canary",
	"cors",
	"fault",
	"ip-restriction",
	"jwt",
	"key-auth",
	"rate-limiting",
	"request-transformer",
	"response-ratelimiting",
	"response-transformer",
}

// Names returns the built-in plugin names, sorted.
func Names() []string { return slices.Clone(names) }

// Has reports whether name is a built-in plugin.
func Has(name string) bool { return slices.Contains(names, name) }
