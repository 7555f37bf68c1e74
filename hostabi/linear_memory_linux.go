package hostabi

import "syscall"

// reserveLinearMemory maps n bytes of address space, read-write and
// without swap reservation: the kernel backs a page only when the guest
// first touches it, so an instance costs what it uses, not its limit.
// nil when the mapping fails (the caller falls back to the Go heap).
func reserveLinearMemory(n uint64) *mappedRegion {
	page := uint64(syscall.Getpagesize())
	n = (n + page - 1) &^ (page - 1)
	if n == 0 || n > 1<<40 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return &mappedRegion{buf: b}
}

// releaseLinearMemory gives the pages back; the range stays mapped and
// reads zeros.
func releaseLinearMemory(b []byte) {
	_ = syscall.Madvise(b[:cap(b)], syscall.MADV_DONTNEED)
}

func unmapLinearMemory(b []byte) {
	_ = syscall.Munmap(b[:cap(b)])
}
