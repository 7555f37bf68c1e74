//go:build race

package http1

// raceEnabled skips the allocation pins: the race detector allocates.
const raceEnabled = true
