package main

import (
	"github.com/sluice-proxy/sluice/plugins/src/jwt"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// heavy is jwt, kept apart from the others: it was left out of a lighter
// variant of this module when Go served the built-ins.
var heavy = map[string]func(uint32) types.PluginContext{
	jwt.Name: jwt.New,
}
