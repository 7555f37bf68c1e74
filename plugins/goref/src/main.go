// Command builtin is sluice's built-in plugins in Go, as one proxy-wasm
// module: each plugin is a root context chosen by root_id, which is the
// plugin's name. sluice serves the built-ins from their Rust ports
// (plugins/rust); this module is no longer served and stays only as the
// reference the side-by-side tests compare the ports with.
package main

import (
	"github.com/sluice-proxy/sluice/plugins/src/addheader"
	"github.com/sluice-proxy/sluice/plugins/src/canary"
	"github.com/sluice-proxy/sluice/plugins/src/cors"
	"github.com/sluice-proxy/sluice/plugins/src/fault"
	"github.com/sluice-proxy/sluice/plugins/src/iprestriction"
	"github.com/sluice-proxy/sluice/plugins/src/keyauth"
	"github.com/sluice-proxy/sluice/plugins/src/ratelimiting"
	"github.com/sluice-proxy/sluice/plugins/src/requesttransformer"
	"github.com/sluice-proxy/sluice/plugins/src/responseratelimiting"
	"github.com/sluice-proxy/sluice/plugins/src/responsetransformer"
	"github.com/sluice-proxy/sluice/sdk/proxywasm"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// plugins is every built-in but jwt (heavy.go), by root_id. plugins/plugins.go in the main module lists the same names; a
// test there keeps the two in step.
var plugins = map[string]func(uint32) types.PluginContext{
	addheader.Name:            addheader.New,
	canary.Name:               canary.New,
	cors.Name:                 cors.New,
	fault.Name:                fault.New,
	iprestriction.Name:        iprestriction.New,
	keyauth.Name:              keyauth.New,
	ratelimiting.Name:         ratelimiting.New,
	requesttransformer.Name:   requesttransformer.New,
	responseratelimiting.Name: responseratelimiting.New,
	responsetransformer.Name:  responsetransformer.New,
}

func main() {}

func init() {
	// The built-ins never call DefaultHttpContext's methods themselves, so
	// sluice may skip the callbacks each leaves at its defaults (an
	// add-header filter need not be entered for the response).
	proxywasm.SkipDefaultCallbacks()
	for name, f := range plugins {
		proxywasm.RegisterPlugin(name, f)
	}
	for name, f := range heavy {
		proxywasm.RegisterPlugin(name, f)
	}
}
