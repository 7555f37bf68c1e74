// Package realhost holds the tests that run the built-in module on
// sluice's real Wasm host (hostabi). They live apart from package plugins
// so that the module's own tests build even while hostabi does not.
package realhost
