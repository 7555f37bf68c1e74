//go:build unix && !linux

package iohandle

import "syscall"

// Read, Write and Peek are read(2), write(2) and recv(MSG_PEEK |
// MSG_DONTWAIT) on a non-blocking socket, for a syscall.RawConn's
// callbacks; on Linux they are plain system calls, elsewhere the syscall
// package's.

// Read reads from fd into p.
func Read(fd uintptr, p []byte) (int, error) { return syscall.Read(int(fd), p) }

// Write writes p to fd; it may write less than all of p.
func Write(fd uintptr, p []byte) (int, error) { return syscall.Write(int(fd), p) }

// Peek copies what fd has to read into p without taking it, never waiting:
// syscall.EAGAIN when there is nothing, 0 bytes when the peer has closed.
func Peek(fd uintptr, p []byte) (int, error) {
	n, _, err := syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, err
}
