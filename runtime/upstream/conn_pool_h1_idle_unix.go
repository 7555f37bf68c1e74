//go:build unix

package upstream

import (
	"net"
	"syscall"
)

// peekState peeks at an idle socket without blocking. Its function value
// is made once per connection so a peek allocates nothing.
type peekState struct {
	raw  syscall.RawConn // nil: not a socket we can peek at
	peek func(fd uintptr) bool
	n    int
	err  error
	buf  [1]byte
}

func (p *idlePeek) initPeek(sock net.Conn) {
	sc, ok := sock.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.raw = raw
	p.peek = func(fd uintptr) bool {
		p.n, _, p.err = syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // done, whatever it found: never wait for data
	}
}

// quiet tells whether the socket has nothing to read (no bytes, no FIN).
func (p *idlePeek) quiet() bool {
	if p.raw == nil {
		return true
	}
	if err := p.raw.Read(p.peek); err != nil {
		return false
	}
	// EAGAIN: nothing there. n > 0: unsolicited bytes. n == 0: the
	// upstream closed the connection. Any other error: it is broken.
	return p.err == syscall.EAGAIN
}
