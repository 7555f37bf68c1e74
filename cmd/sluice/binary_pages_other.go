//go:build !linux

package main

// releaseBinaryPages is a no-op where the kernel's madvise is not known
// to drop a file mapping's pages without losing data.
func releaseBinaryPages() {}
