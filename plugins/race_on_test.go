//go:build race

package plugins

// raceEnabled lets long single-goroutine tests (memory over 100,000
// streams) skip under the race detector, which makes them take minutes
// and has nothing to find in them.
const raceEnabled = true
