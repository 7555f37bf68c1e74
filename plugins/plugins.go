// Package plugins embeds sluice's built-in policy filters: one small
// Rust module each (./rust, on sdk/rust), whose root_id is the plugin's
// name. Configuration "wasm = \"builtin:NAME\"" loads RustModule(NAME)
// with root_id NAME. The Go plugins they were ported from are not
// embedded: they stay as the tests' reference (package goref).
package plugins

import (
	_ "embed"
	"slices"
	"unsafe"
)

//go:generate make rust

// The built-ins, one module each (rust/NAME.wasm, built from
// rust/NAME/lib.rs by `make -C plugins rust`): a module is about 0.1 MB,
// compiles in milliseconds, and its instance starts with 128 KiB of linear
// memory, so a config loads only what it uses. They are strings so that
// the bytes sit in the binary's read-only data: clean file-backed pages,
// which ReleaseModulePages can hand back to the page cache once a module
// is compiled.
var (
	//go:embed rust/add-header.wasm
	rustAddHeader string
	//go:embed rust/canary.wasm
	rustCanary string
	//go:embed rust/cors.wasm
	rustCORS string
	//go:embed rust/fault.wasm
	rustFault string
	//go:embed rust/ip-restriction.wasm
	rustIPRestriction string
	//go:embed rust/jwt.wasm
	rustJWT string
	//go:embed rust/key-auth.wasm
	rustKeyAuth string
	//go:embed rust/rate-limiting.wasm
	rustRateLimiting string
	//go:embed rust/request-transformer.wasm
	rustRequestTransformer string
	//go:embed rust/response-ratelimiting.wasm
	rustResponseRatelimiting string
	//go:embed rust/response-transformer.wasm
	rustResponseTransformer string
)

var rustModules = map[string]*string{
	"add-header":            &rustAddHeader,
	"canary":                &rustCanary,
	"cors":                  &rustCORS,
	"fault":                 &rustFault,
	"ip-restriction":        &rustIPRestriction,
	"jwt":                   &rustJWT,
	"key-auth":              &rustKeyAuth,
	"rate-limiting":         &rustRateLimiting,
	"request-transformer":   &rustRequestTransformer,
	"response-ratelimiting": &rustResponseRatelimiting,
	"response-transformer":  &rustResponseTransformer,
}

// RustModule returns the module serving built-in name (its root_id is
// name too), or nil if name is no built-in. The slice is shared and
// read-only: writing to it faults.
func RustModule(name string) []byte {
	if m, ok := rustModules[name]; ok {
		return bytesOf(*m)
	}
	return nil
}

// RustNames returns the built-ins served by Rust modules, sorted.
func RustNames() []string {
	var out []string
	for n := range rustModules {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// ReleaseModulePages tells the kernel that the modules' bytes are not
// needed in memory for now: once compiled, nothing reads them until the
// next load, and they cost resident memory otherwise. They
// stay in the page cache (and the binary), and a later read faults them
// back in. A no-op where unsupported.
func ReleaseModulePages() {
	for _, m := range rustModules {
		releasePages(bytesOf(*m))
	}
}

// names are the built-ins, each with a rust/NAME.wasm; TestNamesMatchModules
// (realhost) checks them against the modules and the Go reference.
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
