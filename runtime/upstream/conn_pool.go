package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/http2"
	"github.com/sluice-proxy/sluice/runtime/iohandle"
)

// connPool is a cluster's connections for one protocol: h1Pool for http1,
// h2Pool (on runtime/http2's client codec) for h2 and h2c, quic-go's
// http3.Transport for h3. Every connection is made through connLimiter, so
// cx_active and max_connections count real sockets cluster-wide.
type connPool interface {
	CloseIdleConnections()
}

// connLimiter counts a cluster's open connections and enforces
// max_connections. A dial at the limit first closes idle connections (to
// other endpoints: the pool would have reused one to this endpoint), then
// waits up to the connect timeout for a connection to close before it
// overflows.
type connLimiter struct {
	max       int64
	timeout   time.Duration
	active    atomic.Int64
	gauge     gaugeAdder
	overflow  counterIncer
	closeIdle func()

	mu    sync.Mutex
	freed chan struct{} // closed and replaced when a connection closes
}

type gaugeAdder interface{ Add(int64) }
type counterIncer interface{ Inc() }

func (l *connLimiter) acquire(ctx context.Context) error {
	if l.tryAcquire() {
		return nil
	}
	if l.closeIdle != nil {
		// Idle connections to other endpoints are cheaper to lose than
		// a request.
		l.closeIdle()
		if l.tryAcquire() {
			return nil
		}
	}
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	for {
		l.mu.Lock()
		if l.freed == nil {
			l.freed = make(chan struct{})
		}
		ch := l.freed
		l.mu.Unlock()
		if l.tryAcquire() {
			return nil
		}
		select {
		case <-ch:
			if l.tryAcquire() {
				return nil
			}
		case <-t.C:
			l.overflow.Inc()
			return fmt.Errorf("max_connections %d reached: %w", l.max, ErrOverflow)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *connLimiter) tryAcquire() bool {
	for {
		n := l.active.Load()
		if n >= l.max {
			return false
		}
		if l.active.CompareAndSwap(n, n+1) {
			l.gauge.Add(1)
			return true
		}
	}
}

func (l *connLimiter) release() {
	l.active.Add(-1)
	l.gauge.Add(-1)
	l.mu.Lock()
	if l.freed != nil {
		close(l.freed)
		l.freed = nil
	}
	l.mu.Unlock()
}

// countedConn gives its limiter slot back exactly once, on Close: a
// connection that is not one of iohandle's (which does it itself,
// OnClose).
type countedConn struct {
	net.Conn
	once sync.Once
	l    *connLimiter
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}

// tlsCountedConn keeps the tls.Conn's ConnectionState visible: x/net's
// http2 transport reads it through an interface to fill resp.TLS.
type tlsCountedConn struct {
	countedConn
	tc *tls.Conn
}

func (c *tlsCountedConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// dialer makes TCP (and TLS) connections for a cluster.
type dialer struct {
	net     net.Dialer
	limiter *connLimiter
	tls     *tlsSource // nil for plaintext
	sni     func(addr string) string
	log     *zap.Logger
}

func (d *dialer) dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := d.limiter.acquire(ctx); err != nil {
		return nil, err
	}
	c, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		d.limiter.release()
		return nil, &dialError{err: err}
	}
	w := iohandle.Wrap(c)
	if iohandle.OnClose(w, d.limiter.release) {
		// The socket gives the slot back itself: no countedConn for
		// every read and write to pass through.
		return w, nil
	}
	return &countedConn{Conn: w, l: d.limiter}, nil
}

func (d *dialer) dialTLS(ctx context.Context, network, addr string, alpn string) (net.Conn, error) {
	if err := d.limiter.acquire(ctx); err != nil {
		return nil, err
	}
	raw, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		d.limiter.release()
		return nil, &dialError{err: err}
	}
	cfg := d.tls.clientConfig(d.sni(addr))
	if alpn != "" {
		cfg.NextProtos = []string{alpn}
	}
	tc := tls.Client(iohandle.Wrap(raw), cfg)
	hctx, cancel := context.WithTimeout(ctx, d.net.Timeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if got := tc.ConnectionState().NegotiatedProtocol; err == nil && alpn == "h2" && got != alpn {
		// A server without ALPN is taken to speak HTTP/1.1; h2 must be
		// agreed on, or the first frame would be garbage to it.
		err = fmt.Errorf("upstream did not negotiate h2 over ALPN (got %q)", got)
	}
	if err != nil {
		raw.Close()
		d.limiter.release()
		if d.log != nil {
			d.log.Warn("upstream TLS handshake failed", zap.String("endpoint", addr), zap.Error(err))
		}
		return nil, &dialError{err: fmt.Errorf("tls handshake with %s: %w", addr, err)}
	}
	return &tlsCountedConn{countedConn: countedConn{Conn: tc, l: d.limiter}, tc: tc}, nil
}

// newHTTP1Pool builds the http1 pool, over TLS when the cluster has TLS
// settings (ALPN http/1.1).
func newHTTP1Pool(d *dialer, lim config.Limits, idle time.Duration, maxConns int) *h1Pool {
	dial := d.dialTCP
	if d.tls != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.dialTLS(ctx, network, addr, "http/1.1")
		}
	}
	return newH1Pool(dial, idle, maxConns, lim.MaxRequestsPerConnection)
}

// newHTTP2Pool builds the h2 (TLS) or h2c (prior knowledge) pool.
func newHTTP2Pool(d *dialer, idle time.Duration, plaintext bool, maxStreams int) *h2Pool {
	opts := http2.ClientOptions{
		Scheme:      "http",
		IdleTimeout: idle,
		// Envoy pings idle upstream h2 connections too; this also
		// notices a peer that vanished without a FIN.
		ReadIdleTimeout: 30 * time.Second,
		PingTimeout:     15 * time.Second,
	}
	dial := d.dialTCP
	if !plaintext {
		opts.Scheme = "https"
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.dialTLS(ctx, network, addr, "h2")
		}
	}
	return newH2Pool(opts, dial, d.net.Timeout, maxStreams)
}

// h3Pool wraps http3.Transport so Close releases the QUIC socket.
type h3Pool struct{ *http3.Transport }

func newHTTP3Pool(d *dialer, idle time.Duration) *h3Pool {
	qcfg := &quic.Config{
		MaxIdleTimeout:       idle,
		HandshakeIdleTimeout: d.net.Timeout,
		KeepAlivePeriod:      idle / 2,
	}
	t := &http3.Transport{
		QUICConfig:         qcfg,
		DisableCompression: true,
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			if err := d.limiter.acquire(ctx); err != nil {
				return nil, err
			}
			cfg := d.tls.clientConfig(d.sni(addr))
			cfg.NextProtos = tlsCfg.NextProtos // h3, set by the transport
			dctx, cancel := context.WithTimeout(ctx, d.net.Timeout)
			conn, err := quic.DialAddr(dctx, addr, cfg, qc)
			cancel()
			if err != nil {
				d.limiter.release()
				if d.log != nil {
					d.log.Warn("upstream QUIC handshake failed", zap.String("endpoint", addr), zap.Error(err))
				}
				return nil, &dialError{err: fmt.Errorf("quic handshake with %s: %w", addr, err)}
			}
			go func() {
				<-conn.Context().Done()
				d.limiter.release()
			}()
			return conn, nil
		},
	}
	return &h3Pool{t}
}

// downstreamPool is the pool of protocol = "downstream" clusters: a
// request goes out in the HTTP version it came in with (Request.ProtoMajor,
// which the proxy copies from the downstream request): HTTP/1.x over h1,
// HTTP/2 and HTTP/3 over h2. gRPC and anything else that needs HTTP/2
// arrives over HTTP/2 and stays on it.
type downstreamPool struct {
	h1 *h1Pool
	h2 *h2Pool
}

func (p *downstreamPool) send(ctx context.Context, req *Request, addr string, at time.Duration) (*responseState, error) {
	if req.ProtoMajor >= 2 {
		return p.h2.send(ctx, req, addr, at)
	}
	return p.h1.send(ctx, req, addr, at)
}

func (p *downstreamPool) CloseIdleConnections() {
	p.h1.CloseIdleConnections()
	p.h2.CloseIdleConnections()
}
