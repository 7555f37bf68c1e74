package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Connect opens a connection to an endpoint the cluster's load balancer
// picks, for a caller that speaks its own protocol over it (a TCP
// listener: Envoy's tcp_proxy). It is the same cluster an HTTP request
// uses: its discovery, health and ejections, its max_connections (the
// connection counts in cx_active until Close), its connect timeout and its
// TLS (tls.identity, tls.ca, client certificate, server name; no ALPN).
//
// A connect failure counts toward the endpoint's outlier ejection, as a
// failed HTTP try does, and a success ends its streak. A failed endpoint
// is followed by the balancer's next pick, up to one try per endpoint (as
// Envoy's max_connect_attempts would be with the cluster's size); the
// address returned is the endpoint connected to. Errors are *Error.
func (c *Cluster) Connect(ctx context.Context, pick Pick) (net.Conn, string, error) {
	hs := c.hosts.Load()
	tries := 1
	if hs != nil {
		tries = max(len(hs.hosts), 1)
	}
	var errs []error
	var last string
	tried := make(map[*endpoint]bool, tries)
	for range tries {
		ep := c.pickEndpoint(pick)
		if ep == nil {
			break
		}
		if tried[ep] {
			// The balancer came back to a failed endpoint (ring hash,
			// random): the try is spent, the dial is not repeated.
			continue
		}
		tried[ep] = true
		ep.active.Add(1)
		conn, err := c.dial(ctx, ep.addr)
		if err == nil {
			if c.outlier != nil {
				c.outlier.record(ep, false)
			}
			return &endpointConn{Conn: conn, ep: ep}, ep.addr, nil
		}
		ep.active.Add(-1)
		var de *dialError
		if !errors.As(err, &de) {
			// max_connections or the caller's context: no endpoint is
			// at fault and the next one would fare no better.
			f := Overflow
			if ctx.Err() != nil {
				f = classify(ctx.Err())
			}
			return nil, "", c.fail(f, ep.addr, err)
		}
		if c.outlier != nil {
			c.outlier.record(ep, true)
		}
		errs, last = append(errs, err), ep.addr
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, "", c.fail(NoHealthyUpstream, "", ErrNoHealthyUpstream)
	}
	if len(errs) > 1 {
		last = ""
	}
	return nil, "", c.fail(ConnectFailure, last, fmt.Errorf("%d endpoints tried: %w", len(errs), errors.Join(errs...)))
}

// dial connects to addr through the cluster's dialer: TLS when the
// cluster has it, counted against max_connections.
func (c *Cluster) dial(ctx context.Context, addr string) (net.Conn, error) {
	if c.dialer.tls != nil {
		return c.dialer.dialTLS(ctx, "tcp", addr, "")
	}
	return c.dialer.dialTCP(ctx, "tcp", addr)
}

// endpointConn holds its endpoint's active count (least_request, the
// admin page) until Close.
type endpointConn struct {
	net.Conn
	ep   *endpoint
	once sync.Once
}

func (c *endpointConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.ep.active.Add(-1) })
	return err
}

// CloseWrite half-closes a plain TCP connection, so a client's end of
// stream reaches the backend while its reply still flows (tcp_proxy);
// over TLS it sends close_notify.
func (c *endpointConn) CloseWrite() error {
	inner := c.Conn
	switch cc := inner.(type) {
	case *countedConn:
		inner = cc.Conn
	case *tlsCountedConn:
		inner = cc.Conn
	}
	if w, ok := inner.(interface{ CloseWrite() error }); ok {
		return w.CloseWrite()
	}
	return c.Close()
}
