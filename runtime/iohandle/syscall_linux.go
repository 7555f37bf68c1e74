package iohandle

import (
	"syscall"
	"unsafe"
)

// Read, Write and Peek are read(2), write(2) and recv(MSG_PEEK |
// MSG_DONTWAIT) on a non-blocking socket, for a syscall.RawConn's
// callbacks: drop-in for syscall.Read, syscall.Write and syscall.Recvfrom,
// made as plain system calls (syscall.RawSyscall) because they never
// block, so they leave the runtime's monitor thread asleep (see the
// package comment). The error is a syscall.Errno, nil when there is none.

// Read reads from fd into p.
func Read(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return result(n, errno)
}

// Write writes p to fd; it may write less than all of p.
func Write(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return result(n, errno)
}

// Peek copies what fd has to read into p without taking it, never waiting:
// syscall.EAGAIN when there is nothing, 0 bytes when the peer has closed.
func Peek(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return result(n, errno)
}

func result(n uintptr, errno syscall.Errno) (int, error) {
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
