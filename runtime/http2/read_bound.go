package http2

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// readBound is the read deadline a connection's reader keeps while it
// serves, on both sides. A socket of iohandle's waits for the peer before
// it reads only while a deadline is set, since a reset the poller does not
// report could keep a wait without one going forever (runtime/iohandle);
// without it, every read that follows a batch of frames first tries and
// finds nothing: one system call a request on each of a sidecar's h2
// connections. When the bound passes, the reader reads once without it,
// trying first (which meets such a reset), then sets it again: a missed
// reset holds the connection's streams for this long at most.
const readBound = 5 * time.Second

// boundedReader is what a connection's bufio.Reader reads: the socket,
// under readBound's deadline, renewed when it passes. That deadline's
// timeout is never seen above it, so it cuts no frame; other deadlines
// (the server's preface, a closing connection's) end reads as before.
// Only the connection's reader calls Read and set.
type boundedReader struct {
	conn  net.Conn
	bound time.Duration
	mu    *sync.Mutex // the connection's
	// ending, under mu: the connection closes, and the read deadline is
	// its close's, not to be moved.
	ending func() bool
	on     bool // the read deadline is the bound's
}

func (r *boundedReader) init(c net.Conn, bound time.Duration, mu *sync.Mutex, ending func() bool) {
	*r = boundedReader{conn: c, bound: bound, mu: mu, ending: ending}
}

func (r *boundedReader) Read(p []byte) (int, error) {
	n, err := r.conn.Read(p)
	if n != 0 || err == nil || !r.on || !errors.Is(err, os.ErrDeadlineExceeded) || !r.set(false) {
		return n, err
	}
	n, err = r.conn.Read(p)
	if err == nil {
		r.set(true)
	}
	return n, err
}

// set puts the deadline the bound from now, or clears it, and reports
// whether it did: not on a connection that is ending. Under the
// connection's mutex, as ending's state is set: a close's deadline comes
// after.
func (r *boundedReader) set(on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	if r.ending() {
		return false
	}
	var t time.Time
	if on {
		t = time.Now().Add(r.bound)
	}
	r.conn.SetReadDeadline(t)
	r.on = on
	return true
}
