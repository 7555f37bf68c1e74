//go:build !linux

package hostabi

// reserveLinearMemory is Linux-only for now; elsewhere linear memory is a
// Go slice (memory.go).
func reserveLinearMemory(uint64) *mappedRegion { return nil }

func releaseLinearMemory([]byte) {}

func unmapLinearMemory([]byte) {}

func releaseZeroPages([]byte) {}
