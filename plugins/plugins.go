// Package plugins embeds sluice's built-in policy filters: one Rust module
// (./rust, on sdk/rust) holding all of them, each a root context chosen
// by its root_id, the plugin's name. Configuration "wasm =
// \"builtin:NAME\"" loads RustModule(NAME) with root_id NAME. The Go
// plugins they were ported from are not embedded: they stay as the tests'
// reference (package goref).
package plugins

import (
	_ "embed"
	"slices"
	"unsafe"
)

//go:generate make rust

// builtins is rust/builtins.wasm, built from rust/lib.rs by `make -C
// plugins rust`. One module for every built-in, not one each, because
// what they share (the crate, std, the JSON reader, the regex crate) is
// most of each module: README.md has the measurements. It is a string so
// that the bytes sit in the binary's read-only data: clean file-backed
// pages, which ReleaseModulePages can hand back to the page cache once
// the module is compiled.
//
//go:embed rust/builtins.wasm
var builtins string

// RustModule returns the module serving built-in name (with root_id
// name), or nil if name is no built-in. Every built-in is served by the
// same module. The slice is shared and read-only: writing to it faults.
func RustModule(name string) []byte {
	if !Has(name) {
		return nil
	}
	return bytesOf(builtins)
}

func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// ReleaseModulePages tells the kernel that the module's bytes are not
// needed in memory for now: once compiled, nothing reads them until the
// next load, and they cost resident memory otherwise. They
// stay in the page cache (and the binary), and a later read faults them
// back in. A no-op where unsupported.
func ReleaseModulePages() {
	releasePages(bytesOf(builtins))
}

// names are the built-ins, each rust/NAME.rs and an entry of rust/lib.rs's
// PLUGINS; TestNamesMatchModules (realhost) checks that the module and the
// Go reference serve each.
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
