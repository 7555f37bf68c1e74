//go:build linux

package iohandle

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
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
// or the deadline passes, exactly as net's own Read does.
type Conn struct {
	*net.TCPConn
	raw syscall.RawConn

	rmu     sync.Mutex // one reader at a time owns rbuf/rn/rerr
	rbuf    []byte
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	wmu     sync.Mutex // one writer at a time owns wbuf/wn/werr
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

func isConn(c net.Conn) bool {
	_, ok := c.(*Conn)
	return ok
}

func wrapTCP(tc *net.TCPConn) net.Conn {
	raw, err := tc.SyscallConn()
	if err != nil {
		return tc
	}
	c := &Conn{TCPConn: tc, raw: raw}
	// Made once per connection: the function values given to the
	// RawConn would otherwise be allocated on every call.
	c.readFn = c.read
	c.writeFn = c.write
	return c
}

// Read reads what the socket holds, up to len(p); with nothing there it
// waits in the poller for the socket to become readable.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.raw.Read(c.readFn)
	// After the wait, not before: what arrived may start long work.
	keepMonitorNear()
	n, rerr := c.rn, c.rerr
	c.rbuf, c.rerr = nil, nil
	c.rmu.Unlock()
	if err != nil {
		return 0, c.opError("read", err)
	}
	if rerr != nil && rerr != io.EOF {
		return n, c.opError("read", rerr)
	}
	return n, rerr
}

// read is the RawConn callback: true when done (data, EOF or an error),
// false to wait for readability.
func (c *Conn) read(fd uintptr) bool {
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
	if len(p) == 0 {
		return 0, nil
	}
	keepMonitorNear()
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.raw.Write(c.writeFn)
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
		// From the RawConn (closed, deadline): it says "raw-read".
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
