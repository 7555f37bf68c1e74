//go:build unix

package iohandle

import "syscall"

// Empty says whether fd has nothing to read: a Peek into p (one byte
// will do), retried when interrupted, that finds no bytes, no FIN and no
// pending error. For a syscall.RawConn's callbacks, as Peek.
func Empty(fd uintptr, p []byte) bool {
	// The errno as a number: an error compared with syscall.EAGAIN is a
	// runtime call (the same dynamic type), and the pools peek on every
	// reuse of a connection.
	_, err := Peek(fd, p)
	errno, _ := err.(syscall.Errno)
	for errno == syscall.EINTR {
		_, err = Peek(fd, p)
		errno, _ = err.(syscall.Errno)
	}
	return errno == syscall.EAGAIN
}
