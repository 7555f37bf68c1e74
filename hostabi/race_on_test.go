//go:build race

package hostabi

const raceEnabled = true
