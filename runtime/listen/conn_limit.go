package listen

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/iohandle"
	"github.com/sluice-proxy/sluice/runtime/stats"
)

// ConnLimit is the process-wide cap on downstream connections, shared by
// every data-plane listener (HTTP and TCP), as Envoy's
// global_downstream_max_connections: a connection past it is closed as
// soon as it is accepted, before a byte is read, and counted. The admin
// listener does not take part; it keeps descriptors of its own in reserve.
type ConnLimit struct {
	max      int64
	active   atomic.Int64
	gauge    *stats.Gauge
	overflow *stats.Counter
	log      *zap.Logger
}

// fdReserve is what DefaultMaxConnections leaves aside for everything
// that is not a downstream connection's pair: listeners, the admin's
// reserve, config, Wasm and log files, the poller, health checks.
const fdReserve = 64

// DefaultMaxConnections is the cap when the config sets none: half of what
// the file-descriptor limit leaves after fdReserve, since a proxied
// connection usually holds an upstream connection too. A flood then meets
// the cap, is refused and counted, before the descriptor table runs out
// (at which point accept fails for everyone). Go raises the soft limit to
// the hard one at start, so this reads the limit the process really has.
func DefaultMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<40 {
		return 1 << 20
	}
	return max(int(rl.Cur)-fdReserve, 32) / 2
}

// NewConnLimit returns a cap of max connections (DefaultMaxConnections
// when max <= 0), with its metrics in reg.
func NewConnLimit(max int, reg *stats.Registry, log *zap.Logger) *ConnLimit {
	if max <= 0 {
		max = DefaultMaxConnections()
	}
	return &ConnLimit{
		max:      int64(max),
		gauge:    reg.Gauge("sluice_downstream_cx_active", "Downstream connections open over every data-plane listener."),
		overflow: reg.Counter("sluice_downstream_cx_overflow_total", "Downstream connections closed at accept because [server] max_connections was reached."),
		log:      log,
	}
}

// Max is the cap in force.
func (cl *ConnLimit) Max() int { return int(cl.max) }

// Listener wraps ln so that its connections count against the cap. It
// also rides out a full descriptor table (EMFILE, ENFILE): Accept waits
// and retries, as net/http does, rather than ending the listener (the TCP
// listener's loop stops on other errors) or logging every retry.
func (cl *ConnLimit) Listener(ln net.Listener) net.Listener {
	if cl == nil {
		return ln
	}
	return &limitListener{Listener: ln, cl: cl, release: cl.release}
}

type limitListener struct {
	net.Listener
	cl      *ConnLimit
	release func() // cl.release, made once
}

func (l *limitListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !descriptorsExhausted(err) {
				return nil, err
			}
			if backoff == 0 {
				l.cl.log.Warn("out of file descriptors; accepting again shortly", zap.String("address", l.Addr().String()), zap.Error(err))
			}
			// Starts long enough that the admin listener, which has
			// descriptors in reserve, gets the ones freed meanwhile.
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if l.cl.active.Add(1) > l.cl.max {
			l.cl.active.Add(-1)
			l.cl.overflow.Inc()
			c.Close()
			continue
		}
		l.cl.gauge.Add(1)
		if iohandle.OnClose(c, l.release) {
			// The socket gives the place back itself: no wrapper for
			// every read, write and wait to pass through.
			return c, nil
		}
		return &limitConn{Conn: c, cl: l.cl}, nil
	}
}

// descriptorsExhausted reports an accept that failed for want of a file
// descriptor (the process's or the system's).
func descriptorsExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// limitConn gives its place back once, when closed: a connection that is
// not one of iohandle's (which does it itself, OnClose).
type limitConn struct {
	net.Conn
	cl     *ConnLimit
	closed atomic.Bool
}

func (c *limitConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.cl.release()
	}
	return c.Conn.Close()
}

// release gives a connection's place back.
func (cl *ConnLimit) release() {
	cl.active.Add(-1)
	cl.gauge.Add(-1)
}

// CloseWrite keeps half-closes working for the TCP proxy and the
// preface check.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// WaitReadable passes the HTTP/1.1 server's wait for a request on
// (http1.ReadWaiter): limitConn only counts Close.
func (c *limitConn) WaitReadable() bool { return waitReadable(c.Conn) }

// WriteThrough lets the HTTP/1.1 server write to the connection itself
// (one writev for head and body): limitConn only counts Close.
func (c *limitConn) WriteThrough() net.Conn { return c.Conn }
