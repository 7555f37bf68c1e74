//go:build linux

package iohandle

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxRW caps one read or write, as the standard library does, so a huge
// buffer cannot make one system call run for long with the P held.
const maxRW = 1 << 30

// Conn is a TCP connection whose reads and writes are non-blocking system
// calls made without the Go scheduler's blocking-call protocol. The
// embedded *net.TCPConn keeps everything else (addresses, deadlines, Close,
// CloseWrite, ReadFrom/WriteTo, writev through net.Buffers), and its poller
// still does the waiting: a read that would block returns to
// syscall.RawConn, which parks the goroutine until the socket is readable
// or the deadline passes, exactly as net's own Read does. After a read
// that left the socket empty, the next one waits first, keeping the
// poller's readiness (readiness_linux.go).
type Conn struct {
	// The fields are in the order a request touches them, 64-byte lines
	// marked: a connection's fields are out of the cache whenever its
	// goroutine resumes (64 connections' state between two of its
	// requests), so every line a Read or Write touches is a miss. A Read
	// touches line 0 and 1 (and 2 and 3 with TCP_INQ on), a Write line
	// 0, 3 and 4; line 5 is set up once or used rarely. 384 bytes, a
	// size class of its own, so a Conn starts on a line
	// (TestConnLayout).
	//
	// Line 0: what Read and Write both need, and Read's state.
	raw syscall.RawConn
	// poll is the socket's runtime poll descriptor (0: not found, and
	// reads and writes are the RawConn's); set once, on wrapping. Reads
	// and writes make RawRead's and RawWrite's steps on it inside
	// Control (readiness_linux.go).
	poll uintptr
	// Readiness kept (readiness_linux.go); pd is 0 when it is not.
	pd  uintptr    // poll, while readiness is kept
	rmu sync.Mutex // one reader at a time owns the read state (rbuf to rawF, msg, iov, cmsg)
	// deadline: a read deadline is set. Only then does a read wait
	// without trying first: the wait is then bounded (why: readiness_linux.go).
	deadline atomic.Bool
	inq      bool // TCP_INQ is on: reads are recvmsg(2)
	drained  bool // the last read left the socket empty: wait first
	held     bool // HoldReads: a Read answers at once, without the socket
	// replyNext: Quiet found the socket empty, so the next Read waits
	// first even without a read deadline (Quiet); one Read clears it.
	replyNext bool
	rwait     int32   // the wait's code, when it failed
	peekb     [1]byte // peekFn's and quietFn's
	// The Control callbacks of Read and of the RawConn's Read, and the
	// latter's callback while it runs (readiness_linux.go); made once.
	readCtlFn func(fd uintptr)

	// Line 1.
	rbuf         []byte
	rn           int
	rerr         error
	rawReadCtlFn func(fd uintptr)
	rawF         func(fd uintptr) bool

	// Line 2.
	msg        syscall.Msghdr
	waitOnlyFn func(fd uintptr) // WaitReadable's

	// Line 3.
	iov  syscall.Iovec
	cmsg [3]uint64  // one TCP_INQ control message, 8-byte aligned
	wmu  sync.Mutex // one writer at a time owns wbuf/wn/werr
	// writeCtlFn is Write's Control callback (readiness_linux.go), made
	// once; wwait its failed check's or wait's code.
	writeCtlFn func(fd uintptr)
	wwait      int32

	// Line 4.
	wbuf []byte
	wn   int
	werr error
	*net.TCPConn
	face rawConn // what SyscallConn gives

	// Line 5.
	network string // net's name for it in errors ("tcp", "tcp4", ...)
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
	peekFn  func(fd uintptr) // WaitReadable's, before TCP_INQ is on
	// onClose runs at the first Close (OnClose); closed says it ran.
	onClose func()
	tries   int32 // reads that found nothing (EAGAIN), for tests
	closed  atomic.Bool
	quietFn func(fd uintptr) // Quiet's Control callback
}

// connQuiet is Quiet for a Conn: ok is false without the poll descriptor.
func connQuiet(nc net.Conn) (quiet, ok bool) {
	c, isConn := nc.(*Conn)
	if !isConn || c.pd == 0 {
		return false, false
	}
	c.rmu.Lock()
	err := c.raw.Control(c.quietFn)
	quiet = err == nil && c.replyNext
	c.replyNext = quiet
	c.rmu.Unlock()
	return quiet, true
}

// holdReads is HoldReads for a Conn.
func holdReads(nc net.Conn, hold bool) bool {
	c, isConn := nc.(*Conn)
	if !isConn {
		return false
	}
	c.rmu.Lock()
	c.held, c.replyNext = hold, false
	c.rmu.Unlock()
	return true
}

func isConn(c net.Conn) bool {
	_, ok := c.(*Conn)
	return ok
}

func onClose(nc net.Conn, f func()) bool {
	c, ok := nc.(*Conn)
	if ok {
		c.onClose = f
	}
	return ok
}

// Close is net's, then the OnClose hook, once: what it gives back (a
// connection cap's place) is free once the descriptor is.
func (c *Conn) Close() error {
	err := c.TCPConn.Close()
	if c.onClose != nil && c.closed.CompareAndSwap(false, true) {
		c.onClose()
	}
	return err
}

func wrapTCP(tc *net.TCPConn) net.Conn {
	raw, err := tc.SyscallConn()
	if err != nil {
		return tc
	}
	c := &Conn{TCPConn: tc, raw: raw, network: "tcp"}
	c.face.c = c
	// Made once per connection: the function values given to the
	// RawConn would otherwise be allocated on every call.
	c.readFn = c.read
	c.writeFn = c.write
	c.keepReadiness()
	return c
}

// SetReadDeadline is net's, noting whether a deadline is set (Read).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.deadline.Store(!t.IsZero())
	return c.TCPConn.SetReadDeadline(t)
}

// SetDeadline is net's, noting whether a read deadline is set (Read).
func (c *Conn) SetDeadline(t time.Time) error {
	c.deadline.Store(!t.IsZero())
	return c.TCPConn.SetDeadline(t)
}

// Read reads what the socket holds, up to len(p); with nothing there it
// waits in the poller for the socket to become readable.
func (c *Conn) Read(p []byte) (int, error) {
	if c.poll == 0 || len(p) == 0 || len(p) > maxRW || c.held {
		return c.readSlow(p)
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr, c.rwait = p, 0, nil, pollNoError
	// RawRead's steps (check, reset, try, wait) inside Control, or a wait
	// first after a read that left the socket empty (readCtl).
	err := c.raw.Control(c.readCtlFn)
	// After the wait, not before: what arrived may start long work.
	keepMonitorNear()
	if again := err != nil || c.rwait != pollNoError; again || c.rerr != nil {
		return c.readDone(err, again)
	}
	n := c.rn
	c.rbuf, c.iov.Base = nil, nil
	c.rmu.Unlock()
	return n, nil
}

// readSlow is Read of nothing, of more than one call may take (capped),
// while reads are held (HoldReads), or without the poll descriptor (net's
// RawConn reads). Out of line, as readDone: a plain request never takes
// them, and Read stays short.
//
//go:noinline
func (c *Conn) readSlow(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.held {
		return 0, os.ErrDeadlineExceeded
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	if c.poll != 0 {
		return c.Read(p)
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.raw.Read(c.readFn)
	keepMonitorNear()
	return c.readDone(err, false)
}

// readDone ends a Read, under the read mutex, that failed, met the end of
// the stream, or read through net's RawConn. again: Read's Control step
// failed, and net's own read takes over (readAgain).
//
//go:noinline
func (c *Conn) readDone(err error, again bool) (int, error) {
	if again {
		err = c.readAgain()
		keepMonitorNear()
	}
	n, rerr := c.rn, c.rerr
	c.rbuf, c.rerr, c.iov.Base = nil, nil, nil
	c.rmu.Unlock()
	if err != nil {
		return 0, c.opError("read", err)
	}
	if rerr != nil && rerr != io.EOF {
		return n, c.opError("read", rerr)
	}
	return n, rerr
}

// WaitReadable waits, holding no buffer, until a Read would find
// something (bytes, the peer's FIN, an error), the read deadline passes or
// the connection is closed; the next Read then reads at once, or reports
// the deadline or the close as it would have. It waits only where Read
// would wait before trying (readiness kept, the socket empty, a read
// deadline set) and reports whether it did; otherwise the caller's Read
// tries and waits as usual. A server that waits here for a kept-alive
// client's next request can leave its read buffer in a pool meanwhile, as
// nginx does.
func (c *Conn) WaitReadable() bool {
	c.rmu.Lock()
	waited := c.waitReadable()
	c.rmu.Unlock()
	return waited
}

// waitReadable is WaitReadable under the read mutex.
func (c *Conn) waitReadable() bool {
	if c.pd == 0 || !c.deadline.Load() {
		return false
	}
	if !c.drained {
		if c.inq {
			return false // the last read left bytes: the Read takes them
		}
		// TCP_INQ is not on yet (a connection turns it on at its first
		// read that finds nothing): a peek says whether the socket is
		// empty, and turns it on as that read would have.
		c.raw.Control(c.peekFn)
		if !c.drained {
			return false
		}
	}
	c.rwait = pollNoError
	if err := c.raw.Control(c.waitOnlyFn); err == nil && c.rwait == pollNoError {
		// The poller says readable: the next Read tries first. Its mark
		// may be stale (bytes already read), and then that try finds
		// nothing and the Read waits the ordinary way.
		c.drained = false
	}
	// A failed wait leaves drained set: the Read's wait meets the same
	// error at once.
	return true
}

// read is the RawConn callback: true when done (data, EOF or an error),
// false to wait for readability.
func (c *Conn) read(fd uintptr) bool {
	if c.inq {
		return c.readInq(fd)
	}
	for {
		n, err := Read(fd, c.rbuf)
		switch err {
		case nil:
			c.rn = n
			if n == 0 {
				c.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.tries++
			if c.pd != 0 {
				c.startInq(fd)
			}
			return false
		default:
			c.rerr = os.NewSyscallError("read", err)
			return true
		}
	}
}

// Write writes all of p, waiting in the poller whenever the socket's send
// buffer is full.
func (c *Conn) Write(p []byte) (int, error) {
	if c.poll == 0 || len(p) == 0 {
		return c.writeSlow(p)
	}
	keepMonitorNear()
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr, c.wwait = p, 0, nil, pollNoError
	// RawWrite's steps (check, reset, write, wait) inside Control
	// (writeCtl).
	err := c.raw.Control(c.writeCtlFn)
	if again := err != nil || c.wwait != pollNoError; again || c.werr != nil {
		return c.writeDone(err, again)
	}
	n := c.wn
	c.wbuf = nil
	c.wmu.Unlock()
	return n, nil
}

// writeSlow is Write of nothing, or without the poll descriptor (net's
// RawConn writes). Out of line, as writeDone.
//
//go:noinline
func (c *Conn) writeSlow(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	keepMonitorNear()
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, nil
	return c.writeDone(c.raw.Write(c.writeFn), false)
}

// writeDone ends a Write, under the write mutex, that failed or wrote
// through net's RawConn. again: Write's Control step failed, and net's
// own write goes on with what is left (writeAgain).
//
//go:noinline
func (c *Conn) writeDone(err error, again bool) (int, error) {
	if again {
		err = c.writeAgain()
	}
	n, werr := c.wn, c.werr
	c.wbuf, c.werr = nil, nil
	c.wmu.Unlock()
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		p := c.wbuf[c.wn:]
		if len(p) > maxRW {
			p = p[:maxRW]
		}
		n, err := Write(fd, p)
		switch err {
		case nil:
			if n == 0 {
				c.werr = io.ErrUnexpectedEOF
				return true
			}
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = os.NewSyscallError("write", err)
			return true
		}
	}
	return true
}

// opError gives errors the shape net's own Read and Write give them, so
// callers that test for a timeout, net.ErrClosed or a reset see no
// difference.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		if oe.Op != "raw-read" && oe.Op != "raw-write" {
			// Control's (the connection is closed): other addresses.
			err = oe.Err
		} else {
			// From the RawConn (closed, deadline): it says "raw-read".
			oe.Op = op
			return oe
		}
	}
	return &net.OpError{Op: op, Net: c.network, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// WriteTo copies what the connection reads to w until EOF, through Read:
// the embedded connection's WriteTo would read with net's calls, and a
// read there (a reset of readiness, with a try) is not this Conn's.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, readerOnly{c})
}

// readerOnly hides Conn's WriteTo from io.Copy.
type readerOnly struct{ io.Reader }

// SyscallConn gives the RawConn of the connection, whose reads also tell
// the Conn that the poller's readiness may have been used (its next Read
// tries before it waits) and take turns with Read.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return &c.face, nil }

// rawConn is the Conn's syscall.RawConn. A callback of its Read must not
// call the Conn's Read.
type rawConn struct{ c *Conn }

func (r *rawConn) Control(f func(fd uintptr)) error { return r.c.raw.Control(f) }

func (r *rawConn) Read(f func(fd uintptr) bool) error {
	c := r.c
	c.rmu.Lock()
	// The RawConn's Read resets readiness and its callback may wait, or
	// read and leave bytes: whatever it did, the next Read must try.
	c.drained, c.replyNext = false, false
	var err error
	if c.poll != 0 {
		// RawRead's steps inside Control (rawReadCtl).
		c.rawF, c.rwait = f, pollNoError
		err = c.raw.Control(c.rawReadCtlFn)
		c.rawF = nil
		if err != nil || c.rwait != pollNoError {
			err = c.raw.Read(f) // net's error (rawReadCtl)
		}
	} else {
		err = c.raw.Read(f)
	}
	c.rmu.Unlock()
	return err
}

func (r *rawConn) Write(f func(fd uintptr) bool) error { return r.c.raw.Write(f) }
