//go:build race

package realhost

// raceEnabled skips the long single-goroutine memory test under -race.
const raceEnabled = true
