//go:build !race

package wasmfilter

const raceEnabled = false
