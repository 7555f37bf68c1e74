//go:build !lite

package main

import (
	"github.com/sluice-proxy/sluice/plugins/src/jwt"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// heavy is the built-ins that builtin-lite.wasm leaves out; plugins/plugins.go
// in the main module lists the same names (liteOmits).
var heavy = map[string]func(uint32) types.PluginContext{
	jwt.Name: jwt.New,
}
