//go:build race

package upstream

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = true
