// Package plugins embeds sluice's built-in policy filters: one proxy-wasm
// module (built from ./src with the sluice SDK) in which each plugin is a
// root context selected by root_id = the plugin's name. Configuration
// "wasm = \"builtin:NAME\"" loads Module() with root_id NAME.
package plugins

import (
	_ "embed"
	"slices"
	"unsafe"
)

//go:generate make build

// module is a string so that the bytes sit in the binary's read-only data:
// clean file-backed pages, which ReleaseModulePages can hand back to the
// page cache once the module is compiled.
//
//go:embed builtin.wasm
var module string

// Module returns the compiled built-in module. The slice is shared and
// read-only: writing to it faults.
func Module() []byte { return unsafe.Slice(unsafe.StringData(module), len(module)) }

// ReleaseModulePages tells the kernel that the module's bytes are not
// needed in memory for now: once compiled, nothing reads them until the
// next load, and they cost 7 MB of resident memory otherwise. They stay in
// the page cache (and the binary), and a later read faults them back in.
// A no-op where unsupported.
func ReleaseModulePages() { releasePages(Module()) }

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
