// Package plugins embeds sluice's built-in policy filters. Those ported to
// Rust (./rust, on sdk/rust) are one small module each (RustModule); the
// others are still one Go module (built from ./src with the sluice SDK) in
// which each plugin is a root context selected by root_id = the plugin's
// name. Configuration "wasm = \"builtin:NAME\"" loads RustModule(NAME)
// if there is one, else ModuleFor(the config's Go-served built-ins), with
// root_id NAME.
package plugins

import (
	_ "embed"
	"slices"
	"unsafe"
)

//go:generate make build

// module and liteModule are strings so that the bytes sit in the binary's
// read-only data: clean file-backed pages, which ReleaseModulePages can
// hand back to the page cache once a module is compiled.
//
//go:embed builtin.wasm
var module string

// liteModule is every built-in but liteOmits, built with -tags lite.
//
//go:embed builtin-lite.wasm
var liteModule string

// liteOmits is what builtin-lite.wasm leaves out (src/heavy_full.go): jwt's
// public-key cryptography is a third of the full module's compiled code.
var liteOmits = []string{"jwt"}

// Module returns the compiled built-in module with every plugin. The
// slice is shared and read-only: writing to it faults.
func Module() []byte { return bytesOf(module) }

// ModuleFor returns the smallest embedded Go module that has every
// built-in plugin in names still served by Go: builtin-lite.wasm (wazero's
// compiled code 18 MB instead of 25, an instance 3.9 MB instead of 5.5)
// unless one of them is jwt. Read-only, like Module. Names with a
// RustModule do not count: they never load it.
func ModuleFor(names []string) []byte {
	for _, n := range names {
		if slices.Contains(liteOmits, n) && RustModule(n) == nil {
			return Module()
		}
	}
	return bytesOf(liteModule)
}

// The built-ins ported to Rust, one module each (rust/NAME.wasm, built
// from rust/NAME/lib.rs by `make -C plugins rust`): a module is about
// 0.1 MB, compiles in milliseconds, and its instance starts with 128 KiB
// of linear memory, so a config loads only what it uses. Each name is
// also still in the Go module until every built-in is ported; the Go
// copy is no longer served.
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

// RustModule returns the Rust module serving built-in name (its root_id
// is name too), or nil if the Go module serves it. Read-only, like Module.
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
// next load, and they cost up to 7 MB of resident memory otherwise. They
// stay in the page cache (and the binary), and a later read faults them
// back in. A no-op where unsupported.
func ReleaseModulePages() {
	releasePages(bytesOf(module))
	releasePages(bytesOf(liteModule))
	for _, m := range rustModules {
		releasePages(bytesOf(*m))
	}
}

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
