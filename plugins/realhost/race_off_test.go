//go:build !race

package realhost

const raceEnabled = false
