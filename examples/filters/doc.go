// Package filters holds example proxy-wasm filters for sluice, each in its
// own folder with its source, Makefile target, built .wasm and sluice.toml
// (see README.md). This package only holds their end-to-end test, which
// runs each .wasm in a real sluice.
package filters
