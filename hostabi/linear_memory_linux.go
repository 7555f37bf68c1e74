package hostabi

import (
	"encoding/binary"
	"syscall"
	"unsafe"
)

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

// releaseZeroPages gives back the resident pages of b that hold only
// zeros: they read the same once released, and the kernel backs them
// again when the guest writes. A Go guest's start-up leaves such pages
// behind (memory its runtime cleared, stacks it grew and left), a
// quarter of a megabyte or so per instance. Only pages already resident
// are read (mincore), so the scan maps nothing in.
func releaseZeroPages(b []byte) {
	page := syscall.Getpagesize()
	n := len(b) / page
	if n == 0 {
		return
	}
	resident := make([]byte, n)
	if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(n*page),
		uintptr(unsafe.Pointer(&resident[0]))); e != 0 {
		return
	}
	from := -1 // start of the run of zero pages being collected
	for i := 0; i <= n; i++ {
		if i < n && resident[i]&1 != 0 && allZero(b[i*page:(i+1)*page]) {
			if from < 0 {
				from = i
			}
			continue
		}
		if from >= 0 {
			_ = syscall.Madvise(b[from*page:i*page], syscall.MADV_DONTNEED)
			from = -1
		}
	}
}

func allZero(b []byte) bool {
	// Eight bytes at a time: a page is 512 loads.
	for len(b) >= 8 {
		if binary.NativeEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
