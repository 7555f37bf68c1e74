//go:build !race

package hostabi

const raceEnabled = false
