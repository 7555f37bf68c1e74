//go:build lite

package main

import "github.com/sluice-proxy/sluice/sdk/proxywasm/types"

var heavy = map[string]func(uint32) types.PluginContext{}
