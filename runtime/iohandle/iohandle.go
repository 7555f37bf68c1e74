// Package iohandle is the socket under every TCP listener and upstream
// connection: reads and writes of a non-blocking socket made as plain
// system calls (Envoy's IoHandle plays this part over its event loop).
//
// Why: the standard library makes every socket read and write through the
// scheduler's blocking-call protocol (entersyscall/exitsyscall), which
// exists for calls that can block. A non-blocking socket call never does,
// yet the protocol costs on every call at low load: when the process has
// been idle, the runtime's monitor thread (sysmon) has gone to sleep, and
// the first call after wakes it, so it polls every 20 us until the process
// is idle again; a call that takes longer than a monitor tick (a loopback
// write runs the receiver's TCP stack too) can have its P handed to
// another thread. At a sidecar's typical load (one request every
// millisecond or so) that was about a third of its CPU: 1.7 nanosleeps
// and 2.5 futex calls a request. Made as plain system calls, the reads and
// writes leave the monitor asleep; the waiting is still the poller's. The
// monitor's other job, preempting a goroutine that computes for long, is
// kept by a guard that bounds its sleep while sockets are busy
// (monitor_linux.go). Reads also keep the poller's readiness, as nginx
// does: after a read that left the socket empty, the next one waits for
// the poller's word before it reads, instead of trying first and finding
// nothing (readiness_linux.go).
package iohandle

import "net"

// Wrap returns c reading and writing through plain non-blocking system
// calls when it is a TCP connection on a platform that has them; anything
// else is returned as it is.
func Wrap(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		return wrapTCP(tc)
	}
	return c
}

// Plain reports whether c is a connection of this package: its Write is
// a plain write(2) on its descriptor and nothing more, so code holding the
// descriptor (inside a syscall.RawConn callback) may write there instead.
func Plain(c net.Conn) bool { return isConn(c) }

// OnClose arranges for f to run once, at the first Close of c (after the
// descriptor is closed), and reports
// true, when c is a connection of this package; otherwise it does nothing
// and reports false. A listener that counts its connections (a
// connection cap) hooks the count here instead of wrapping each
// connection in a type of its own, whose methods every read, write and
// wait would then pass through: code and calls on every request for
// nothing but the one Close.
func OnClose(c net.Conn, f func()) bool { return onClose(c, f) }

// Quiet checks, without blocking, that c's socket has nothing to read: no
// bytes, no FIN, no pending error (a peek). ok is false when c is not a
// connection of this package that keeps readiness; the caller then
// checks its own way. A pool checks an idle connection so before a
// request goes out on it: bytes there would be read as the answer.
//
// When the socket is quiet, the next Read waits for the poller's word
// before it reads, even without a read deadline (readiness_linux.go: a
// read waits first only with one, for a reset the wait would miss):
// whatever comes after the peek, the answer, a FIN or a reset, marks the
// socket ready, and a reset that came before it is the error the peek
// met. Go's own read would try first and, the answer not being there
// yet, find nothing: a system call a request (over TLS, where the pool
// cannot send and wait in one step as it does over plain text).
func Quiet(c net.Conn) (quiet, ok bool) { return connQuiet(c) }

// HoldReads makes c's reads answer at once, with os.ErrDeadlineExceeded
// (a timeout, which crypto/tls takes as temporary), without touching the
// socket, until it is called again with false; it reports whether c is a
// connection of this package. What a layer above c has buffered can then
// be looked at with a read that cannot wait or take more from the
// socket: a pool looks so for bytes a TLS connection decrypted past a
// response, without the two deadline changes (timer work) and the error
// value that an expired deadline costs.
func HoldReads(c net.Conn, hold bool) bool { return holdReads(c, hold) }

// Listener returns ln with its accepted connections wrapped (Wrap).
func Listener(ln net.Listener) net.Listener {
	return listener{ln}
}

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
