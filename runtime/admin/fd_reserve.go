package admin

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"go.uber.org/zap"
)

// reserveFDs is how many file descriptors the admin listener holds in
// reserve: its connections while the process is out of descriptors.
const reserveFDs = 4

// reserveListener keeps the admin API answering when the process has run
// out of file descriptors (a flood on the data plane, a leak): it holds a
// few descriptors open on /dev/null, and when Accept fails with EMFILE it
// closes one and accepts again into the freed slot. The spare is taken
// back when that connection closes, if a descriptor is free by then, or
// at a later accept. The data-plane listeners wait before retrying after
// EMFILE, so the freed slot goes to the admin connection waiting in the
// backlog. The downstream connection cap ([server] max_connections) keeps
// the data plane below the limit in the first place; this reserve is for
// when something else took the descriptors.
type reserveListener struct {
	net.Listener
	log *zap.Logger

	mu     sync.Mutex
	spares []*os.File
	closed bool
}

func newReserveListener(ln net.Listener, log *zap.Logger) *reserveListener {
	l := &reserveListener{Listener: ln, log: log}
	l.refill()
	return l
}

// refill opens spares up to reserveFDs, as far as descriptors allow.
func (l *reserveListener) refill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.closed && len(l.spares) < reserveFDs {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return
		}
		l.spares = append(l.spares, f)
	}
}

// release closes one spare; false when none is left.
func (l *reserveListener) release() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.spares) == 0 {
		return false
	}
	f := l.spares[len(l.spares)-1]
	l.spares = l.spares[:len(l.spares)-1]
	f.Close()
	return true
}

func (l *reserveListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.refill()
			return &reserveConn{Conn: c, l: l}, nil
		}
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) || !l.release() {
			// net/http's Serve waits and retries on EMFILE.
			return nil, err
		}
		l.log.Warn("out of file descriptors; admin connection accepted from the reserve")
	}
}

func (l *reserveListener) Close() error {
	l.mu.Lock()
	l.closed = true
	for _, f := range l.spares {
		f.Close()
	}
	l.spares = nil
	l.mu.Unlock()
	return l.Listener.Close()
}

// reserveConn takes its spare back when it closes.
type reserveConn struct {
	net.Conn
	l    *reserveListener
	once sync.Once
}

func (c *reserveConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.refill)
	return err
}
