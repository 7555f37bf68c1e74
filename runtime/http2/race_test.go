//go:build race

package http2

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = true
