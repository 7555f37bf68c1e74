package iohandle

import (
	"io"
	"net"
	"os"
	"reflect"
	"syscall"
	"unsafe"
)

// Readiness kept as nginx keeps it. Go's own read (and syscall.RawConn's
// Read) begins by resetting the poller's readiness of the socket, so it
// must try a read to learn whether data is there; after a response, the
// client's next request is almost never there yet, and that try is one
// read(2) a request that only returns EAGAIN. nginx, on edge-triggered
// epoll as Go's poller is, instead notes that a read left the socket
// empty and reads again only once epoll reports new data.
//
// A Conn does the same. When a read leaves nothing in the socket, the
// next Read first waits in the poller without resetting its readiness
// (internal/poll.runtime_pollWait, the call net's own reads wait with),
// then reads. Nothing can be lost: the poller is edge-triggered, so data
// that arrives after our read marks the socket ready whether or not
// anyone waits, and only a reset forgets that mark, which this path never
// does (every reset, net's or a RawConn's, is followed by a read, which
// sees what came before it). A mark left over from data we have already
// read costs one read that finds nothing, which is what every request
// cost before.
//
// "Left nothing" must be exact, not guessed from a short read as nginx
// does: a short read that also took the peer's FIN (a request sent with a
// half-close, a response on a closing connection) leaves no more data and
// no more events, and a wait would then last until the deadline. nginx
// knows the FIN from EPOLLRDHUP, which Go's poller does not pass on; the
// kernel's TCP_INQ answer does: with it on, recvmsg(2) returns how many
// bytes are still queued, 1 or more once a FIN has arrived. A connection
// turns it on at its first read that finds nothing (startInq).
//
// One event is still beyond TCP_INQ: a reset (RST) that comes with or
// just after the peer's last data, before our read. The read returns the
// data, TCP_INQ says nothing is queued (a reset is not a FIN), and the
// wake-up the reset made has already been spent on that read; nginx
// learns of it from EPOLLERR/EPOLLHUP on the event, which Go's poller
// does not pass on either. Such a wait would last until the deadline, or
// forever without one (an HTTP/2 upstream connection's reader, whose
// streams then hang: TestResetWithLastDataEndsTheWait). So a read waits
// first only while a read deadline is set (Conn.deadline): a missed reset
// then costs at most that deadline, like the idle or header timeout of a
// downstream connection, which is where the saved read is (one a
// request, after each response). Without a deadline, reads try first.
// HTTP/2's readers (runtime/http2's readBound) keep a deadline of a few
// seconds for this, and read once without it when it passes.
//
// The wait needs the socket's runtime poll descriptor, which net keeps in
// net.TCPConn -> netFD -> poll.FD.pd.runtimeCtx, out of reach but through
// unsafe. The field offsets are found by name and type once (readLayout);
// each connection is checked on wrapping (the descriptor number read
// through them must be the one the RawConn gives); when anything does not
// fit, or TCP_INQ will not turn on, the connection reads as before, with
// a reset and a try. TestReadinessKeptOnThisGo fails when a Go release moves
// the fields, so the loss shows.

// runtime_pollWait is the runtime's poll_runtime_pollWait, which the
// runtime pushes to internal/poll by linkname (so the linker's check of
// pulled linknames allows it): it waits until the poll descriptor ctx is
// ready for mode ('r' or 'w') and consumes that readiness, without
// resetting it first. It returns one of the codes below.
//
//go:linkname runtime_pollWait internal/poll.runtime_pollWait
func runtime_pollWait(ctx uintptr, mode int) int

// runtime_pollReset is the runtime's poll_runtime_pollReset, pushed to
// internal/poll the same way: what internal/poll's prepareRead does before
// every read (RawRead's too). It checks the descriptor is not closing and
// its deadline has not passed (a code as above), then forgets the
// readiness, so the read that follows is the one that decides whether to
// wait.
//
//go:linkname runtime_pollReset internal/poll.runtime_pollReset
func runtime_pollReset(ctx uintptr, mode int) int

// The runtime's answers from runtime_pollWait (runtime/netpoll.go).
const (
	pollNoError        = 0 // ready
	pollErrClosing     = 1 // the descriptor is closed or closing
	pollErrTimeout     = 2 // the deadline passed
	pollErrNotPollable = 3 // an error event on the descriptor
)

// tcpINQ is TCP_INQ (linux/tcp.h, Linux 4.18+), both the socket option and
// the control message type (TCP_CM_INQ) that carries the queued bytes.
const tcpINQ = 36

// layout holds the offsets that reach a connection's descriptor number
// and runtime poll descriptor from its *net.TCPConn; ok is false when
// this Go's types do not have the expected shape.
var layout = readLayout()

type fdLayout struct {
	ok    bool
	fd    uintptr // *netFD within net.TCPConn (through its embedded conn)
	sysfd uintptr // poll.FD.Sysfd (int) within netFD
	pd    uintptr // poll.FD.pd.runtimeCtx (uintptr) within netFD
	net   uintptr // netFD.net (string), the network's name for errors
}

func readLayout() fdLayout {
	field := func(t reflect.Type, name string, kind reflect.Kind) (reflect.StructField, bool) {
		if t.Kind() != reflect.Struct {
			return reflect.StructField{}, false
		}
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 || f.Type.Kind() != kind {
			return reflect.StructField{}, false
		}
		return f, true
	}
	conn, ok1 := field(reflect.TypeFor[net.TCPConn](), "conn", reflect.Struct)
	fd, ok2 := field(conn.Type, "fd", reflect.Pointer)
	if !ok1 || !ok2 || fd.Type.Elem().Name() != "netFD" {
		return fdLayout{}
	}
	pfd, ok1 := field(fd.Type.Elem(), "pfd", reflect.Struct)
	if !ok1 || pfd.Type.PkgPath() != "internal/poll" || pfd.Type.Name() != "FD" {
		return fdLayout{}
	}
	sysfd, ok1 := field(pfd.Type, "Sysfd", reflect.Int)
	pd, ok2 := field(pfd.Type, "pd", reflect.Struct)
	if !ok1 || !ok2 || pd.Type.Name() != "pollDesc" || pd.Type.NumField() != 1 {
		return fdLayout{}
	}
	ctx, ok1 := field(pd.Type, "runtimeCtx", reflect.Uintptr)
	name, ok2 := field(fd.Type.Elem(), "net", reflect.String)
	if !ok1 || !ok2 {
		return fdLayout{}
	}
	return fdLayout{
		ok:    true,
		fd:    conn.Offset + fd.Offset,
		sysfd: pfd.Offset + sysfd.Offset,
		pd:    pfd.Offset + pd.Offset + ctx.Offset,
		net:   name.Offset,
	}
}

// keepReadiness finds c's runtime poll descriptor when this Go's layout
// fits and c's descriptor is where the layout says; otherwise c reads as
// net does (a reset, then a try), for good.
func (c *Conn) keepReadiness() {
	if !layout.ok {
		return
	}
	netFD := *(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(c.TCPConn), layout.fd))
	if netFD == nil {
		return
	}
	var ctx uintptr
	err := c.raw.Control(func(fd uintptr) {
		// Read while Control holds a reference: the descriptor is open.
		if sysfd := *(*int)(unsafe.Add(netFD, layout.sysfd)); sysfd >= 0 && uintptr(sysfd) == fd {
			ctx = *(*uintptr)(unsafe.Add(netFD, layout.pd))
		}
	})
	if err != nil || ctx == 0 {
		return
	}
	c.pd, c.poll = ctx, ctx
	c.network = *(*string)(unsafe.Add(netFD, layout.net))
	c.msg.Iov = &c.iov
	c.msg.Iovlen = 1
	c.msg.Control = (*byte)(unsafe.Pointer(&c.cmsg[0]))
	// Closures made here (readCtl, writeCtl, rawReadCtl), not method
	// values: a method value adds a wrapper function to every call.
	c.readCtlFn = c.readCtl()
	c.writeCtlFn = c.writeCtl()
	c.rawReadCtlFn = c.rawReadCtl()
	c.waitOnlyFn = c.waitOnly
	c.peekFn = c.peekEmpty
	c.quietFn = c.peekQuiet
}

// startInq turns TCP_INQ on, at the connection's first read that found
// nothing: from then on its reads are recvmsg(2), which says whether the
// socket is left empty. Not before, because recvmsg costs more than
// read(2) (about 0.2 us here, a third of the read it saves), and a
// connection whose reads never find nothing gains nothing from it: an
// upstream connection, whose answer the pool waits for before reading
// (runtime/upstream's sendQuiet), never does. Without TCP_INQ (a kernel
// before 4.18), readiness is not kept.
func (c *Conn) startInq(fd uintptr) {
	if syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpINQ, 1) != nil {
		c.pd = 0
		return
	}
	c.inq = true
}

// readCtl makes the Control callback of a Read while readiness is kept: the
// steps of internal/poll's RawRead (net's own read), made inside Control,
// whose reference keeps the descriptor and its poll descriptor from being
// closed and reused meanwhile, as RawRead's lock does. The lock's other
// part, one reader at a time, is the Conn's read mutex: nothing else
// reads the socket (README). RawRead's path through net's RawConn, its
// lock and its deferred unlock, is code and instructions every read ran
// only to reach the same two runtime calls.
//
// Ordinarily: check and reset (runtime_pollReset, as RawRead does), try,
// and wait for the poller's word whenever a try finds nothing. After a
// read that left the socket empty, with a read deadline set, the wait
// comes first, keeping the poller's readiness; a read that then finds
// nothing (the mark was from data already read) waits again. A failed
// check or wait leaves its code in rwait, and Read meets it again on
// net's own path (readAgain), which gives net's error. A Close from
// another goroutine ends the wait with pollErrClosing.
func (c *Conn) readCtl() func(fd uintptr) {
	return func(fd uintptr) {
		pd := c.poll
		// Quiet's word (replyNext) is for this Read only; it does not
		// touch drained, which only a read with TCP_INQ keeps true (a
		// plain read that leaves bytes would not clear it).
		waitFirst := c.replyNext || c.drained && c.deadline.Load()
		c.replyNext = false
		if !waitFirst {
			if code := runtime_pollReset(pd, 'r'); code != pollNoError {
				c.rwait = int32(code)
				return
			}
			if c.read(fd) {
				return
			}
		}
		for {
			if code := runtime_pollWait(pd, 'r'); code != pollNoError {
				c.rwait = int32(code)
				return
			}
			if c.read(fd) {
				return
			}
		}
	}
}

// peekQuiet is Quiet's Control callback: a peek, which finds nothing (no
// bytes, no FIN, no pending error) on a quiet socket. Then anything that
// comes later, the answer, a FIN or a reset, marks the poll descriptor
// ready, and the next Read may wait before it tries.
func (c *Conn) peekQuiet(fd uintptr) {
	// Bytes, the peer's FIN or a broken socket: not quiet, and the next
	// Read tries first.
	c.replyNext = Empty(fd, c.peekb[:])
}

// readAgain is Read after its Control step failed (the connection
// closed, the deadline passed, an error event): net's own read, which
// meets the same condition and reports it as net reports it, and reads
// the ordinary way if the condition is gone (a deadline moved on). Kept
// out of line: a plain request never takes it.
//
//go:noinline
func (c *Conn) readAgain() error {
	return c.raw.Read(c.readFn)
}

// rawReadCtl makes the Control callback of the RawConn's Read (rawConn.Read)
// while readiness is kept: RawRead's steps, as in readCtl, with the
// caller's callback. A failed check or wait leaves its code in rwait, and
// the RawConn's Read then calls net's, which meets the same condition
// before it calls the callback and reports it as net reports it.
func (c *Conn) rawReadCtl() func(fd uintptr) {
	return func(fd uintptr) {
		pd := c.poll
		if code := runtime_pollReset(pd, 'r'); code != pollNoError {
			c.rwait = int32(code)
			return
		}
		for !c.rawF(fd) {
			if code := runtime_pollWait(pd, 'r'); code != pollNoError {
				c.rwait = int32(code)
				return
			}
		}
	}
}

// writeCtl makes Write's Control callback: the steps of internal/poll's
// RawWrite (net's own write) inside Control, as readCtl makes RawRead's:
// check and reset (runtime_pollReset), write, and wait for the poller's
// word whenever the send buffer is full. RawWrite's lock, one writer at a
// time, is the Conn's write mutex; net's own writes on the embedded
// connection (writev through net.Buffers, ReadFrom) take the descriptor's
// write lock instead, and must not run beside a Write (README). A failed
// check or wait leaves its code in wwait, and Write goes on on net's own
// path (writeAgain).
func (c *Conn) writeCtl() func(fd uintptr) {
	return func(fd uintptr) {
		pd := c.poll
		if code := runtime_pollReset(pd, 'w'); code != pollNoError {
			c.wwait = int32(code)
			return
		}
		for !c.write(fd) {
			if code := runtime_pollWait(pd, 'w'); code != pollNoError {
				c.wwait = int32(code)
				return
			}
		}
	}
}

// writeAgain is Write after its Control step failed (the connection
// closed, the deadline passed): net's own write of what is left, which
// meets the same condition and reports it as net reports it, or writes
// on if it is gone. Kept out of line: a plain request never takes it.
//
//go:noinline
func (c *Conn) writeAgain() error {
	return c.raw.Write(c.writeFn)
}

// waitOnly is WaitReadable's Control callback: the poller's wait alone.
func (c *Conn) waitOnly(uintptr) { c.rwait = int32(runtime_pollWait(c.pd, 'r')) }

// peekEmpty is WaitReadable's Control callback while TCP_INQ is off: an
// empty socket (the peek finds nothing, as a read would have) turns it on
// and is marked drained, so the wait can begin.
func (c *Conn) peekEmpty(fd uintptr) {
	if Empty(fd, c.peekb[:]) {
		c.tries++
		c.startInq(fd)
		c.drained = c.inq
	}
}

// readInq is read with TCP_INQ on: one recvmsg(2), which also tells
// whether the socket is left empty (no bytes, no FIN).
func (c *Conn) readInq(fd uintptr) bool {
	p := c.rbuf
	c.iov.Base = &p[0]
	c.iov.SetLen(len(p))
	for {
		c.msg.SetControllen(len(c.cmsg) * 8)
		c.msg.Flags = 0
		n, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
		switch errno {
		case 0:
			c.rn = int(n)
			if n == 0 {
				c.rerr = io.EOF
			}
			c.drained = c.queued() == 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.tries++
			return false
		default:
			c.rerr = os.NewSyscallError("read", errno)
			c.drained = false
			return true
		}
	}
}

// queued reads TCP_INQ's control message: the bytes still in the socket,
// at least 1 after the peer's FIN; -1 when the message is missing.
func (c *Conn) queued() int {
	hdr := (*syscall.Cmsghdr)(unsafe.Pointer(&c.cmsg[0]))
	if uint64(c.msg.Controllen) < uint64(syscall.CmsgLen(4)) || hdr.Level != syscall.IPPROTO_TCP || hdr.Type != tcpINQ {
		return -1
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(&c.cmsg[0]), syscall.CmsgLen(0))))
}
