//go:build unix

package upstream

import (
	"net"
	"syscall"

	"github.com/sluice-proxy/sluice/runtime/iohandle"
)

// peekState peeks at an idle socket without blocking, and sends a request
// on it in the same step (see sendQuiet). Its function values are made
// once per connection so neither allocates.
type peekState struct {
	raw   syscall.RawConn // nil: not a socket we can peek at
	peek  func(fd uintptr) bool
	empty bool // what peek found
	buf   [1]byte

	// sendQuiet's state, for its function. writes: the socket is the
	// standard library's, so a write on its descriptor is all a write
	// on the connection does (a wrapper of another type might count or
	// transform what it writes).
	writes  bool
	send    func(fd uintptr) bool
	out     []byte // the request
	sent    int    // how much of out is written
	sendErr error
	check   bool // peek before writing
	dirty   bool // the peek found bytes or the upstream's FIN
	waiting bool // the request is out; the next call is the wake-up
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
		p.empty = iohandle.Empty(fd, p.buf[:]) // not syscall.Recvfrom: see iohandle
		return true                            // done, whatever it found: never wait for data
	}
	p.send = p.sendStep()
	switch sock.(type) {
	case *net.TCPConn, *net.UnixConn:
		p.writes = true
	default:
		p.writes = iohandle.Plain(sock)
	}
}

// quiet tells whether the socket has nothing to read (no bytes, no FIN).
// iohandle's check also has the answer's first read wait before it tries
// (iohandle.Quiet): over TLS, the one system call a request saved that
// sendQuiet saves over plain text.
func (p *idlePeek) quiet() bool {
	if q, ok := iohandle.Quiet(p.sock); ok {
		return q
	}
	if p.raw == nil {
		return true
	}
	// Not empty: unsolicited bytes, the upstream's FIN, or a broken
	// socket.
	return p.raw.Read(p.peek) == nil && p.empty
}

// canSendQuiet says whether sendQuiet does the idle check itself, so
// handing the connection out can skip quiet.
func (p *idlePeek) canSendQuiet() bool { return p.writes && !p.tls }

// sendQuiet writes b, a whole request, and waits until the answer can be
// read. In one pass of the poller's read step: with check (a connection
// that was idle), the peek (quiet's check: nothing arrived while the
// connection idled, else errNotQuiet and nothing is written), the write,
// then the wait for readability. The answer's first read then finds bytes: Go's
// own read would try first, get EAGAIN almost always (the upstream has
// not answered yet) and wait; the try is a system call saved. The poller
// forgets earlier readiness when the step begins (before the peek), so an
// answer arriving any time after the peek wakes the wait.
//
// It returns how much of b was written: all of it, or less when the
// socket's send buffer filled (the rest is the caller's, with a blocking
// write). A failed wait after a whole write is not reported: the
// response read meets the same deadline or error.
func (p *idlePeek) sendQuiet(b []byte, check bool) (int, error) {
	p.out, p.sent, p.sendErr, p.check, p.dirty, p.waiting = b, 0, nil, check, false, false
	err := p.raw.Read(p.send)
	n := p.sent
	p.out = nil
	switch {
	case p.dirty:
		return 0, errNotQuiet
	case p.sendErr != nil:
		return n, p.sendErr
	case err != nil && n < len(b):
		return n, err
	}
	return n, nil
}

// sendStep makes sendQuiet's callback, once per connection: a closure,
// not a method value, which would add a wrapper function to every call.
func (p *idlePeek) sendStep() func(fd uintptr) bool {
	return func(fd uintptr) bool {
		if p.waiting {
			return true // readable: the answer (or an error) is there
		}
		// iohandle's calls, not the syscall package's: they never block,
		// and these would wake the runtime's monitor thread on every
		// request (see iohandle).
		if p.check && !iohandle.Empty(fd, p.buf[:]) {
			// Bytes, the upstream's FIN or a broken socket: as in quiet,
			// the connection is not used.
			p.dirty = true
			return true
		}
		// One write takes a request whole but for a full send buffer.
		if n, err := iohandle.Write(fd, p.out); err != nil || n < len(p.out) {
			return p.writeRest(fd, n, err)
		}
		p.sent = len(p.out)
		p.waiting = true
		return false
	}
}

// writeRest is sendStep after a write that was interrupted, cut short or
// failed: it writes on while it can; true (done) when the send buffer is
// full (the caller writes the rest) or the write failed, false (wait for
// the answer) once everything is out. Out of line: a request that fits
// the send buffer never takes it.
//
//go:noinline
func (p *idlePeek) writeRest(fd uintptr, n int, err error) bool {
	for {
		if n > 0 {
			p.sent += n
		}
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return true // the send buffer is full: the caller writes the rest
		case err != nil:
			p.sendErr = err
			return true
		}
		if p.sent == len(p.out) {
			p.waiting = true
			return false
		}
		n, err = iohandle.Write(fd, p.out[p.sent:])
	}
}
