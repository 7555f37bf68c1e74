package plugins

import (
	"syscall"
	"unsafe"
)

// releasePages drops the whole pages inside b from this process's resident
// set. b must be clean file-backed memory (the embedded module, read-only):
// MADV_DONTNEED discards private changes, of which there are none.
func releasePages(b []byte) {
	page := uintptr(syscall.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	first := (start + page - 1) &^ (page - 1)
	last := (start + uintptr(len(b))) &^ (page - 1)
	if last <= first {
		return
	}
	_ = syscall.Madvise(b[first-start:last-start], syscall.MADV_DONTNEED)
}
