// Package goref holds sluice's built-in plugins as they were written in Go
// (./src, one proxy-wasm module in which each plugin is a root context
// selected by root_id = the plugin's name). sluice serves every built-in
// from its Rust port (package plugins, ../rust) and does not embed this
// module: it is the reference the side-by-side tests run the ports
// against (same config, same requests, same answers), and only tests
// import this package. TestModuleIsFresh keeps builtin.wasm what ./src
// builds to.
package goref

import (
	_ "embed"
	"unsafe"
)

//go:generate make -C .. build-goref

//go:embed builtin.wasm
var module string

// Module returns the Go reference module with every built-in plugin. The
// slice is shared and read-only: writing to it faults.
func Module() []byte { return unsafe.Slice(unsafe.StringData(module), len(module)) }
