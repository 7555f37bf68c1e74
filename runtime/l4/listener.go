// Package l4 runs TCP listeners: each connection is proxied to one cluster
// through the listener's proxy-wasm network filters (Envoy's tcp_proxy with
// network filters in front): proxy_on_new_connection, then the bytes of
// each side through on_downstream_data / on_upstream_data, where a filter
// may read, rewrite, hold or close, then the close callbacks. TLS (and
// mTLS, verified as runtime/listen verifies HTTP peers) is terminated here
// when the listener has it.
package l4

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/filter"
	up "github.com/sluice-proxy/sluice/runtime/upstream"
)

// Upstream connects one connection to its backend: *upstream.Cluster,
// so a TCP cluster has an HTTP one's discovery, load balancer, TLS,
// max_connections and outlier ejection.
type Upstream interface {
	// Connect connects to an endpoint and returns it with its address.
	Connect(ctx context.Context, pick up.Pick) (net.Conn, string, error)
}

// Resolution is what one connection uses, taken from the config generation
// current when it was accepted: a reload changes later connections only.
type Resolution struct {
	Upstream Upstream
	// Filters run in order on downstream data and on a new connection, in
	// reverse order on upstream data. A Wasm plugin is one through
	// runtime/wasmfilter; l4 knows only the filter contract.
	Filters []filter.NetworkFactory
	// ClusterMetadata is the cluster's metadata table, for the
	// cluster_metadata attribute.
	ClusterMetadata map[string]any
	// Release, when set, is called once the connection is over.
	Release func()
}

// Options configure a TCP listener.
type Options struct {
	Listener config.Listener
	// TLS, when set, is terminated on every connection.
	TLS *tls.Config
	// Resolve is called for every accepted connection.
	Resolve func() (*Resolution, error)
	Log     *zap.Logger
	// Access, when set, gets one line per connection.
	Access *zap.Logger
	// HandshakeTimeout bounds the TLS handshake and a pause in
	// on_new_connection; default 10s.
	HandshakeTimeout time.Duration
	// WrapListener, when set, wraps the bound listener (the process-wide
	// connection cap).
	WrapListener func(net.Listener) net.Listener
}

// Listener is a running TCP listener.
type Listener struct {
	Name string
	opts Options
	ln   net.Listener
	log  *zap.Logger

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing bool
	wg      sync.WaitGroup
	done    chan struct{}
}

// Listen binds the listener's address.
func Listen(opts Options) (*Listener, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	if opts.Resolve == nil {
		return nil, errors.New("l4: no Resolve")
	}
	ln, err := net.Listen("tcp", opts.Listener.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", opts.Listener.Name, err)
	}
	if opts.WrapListener != nil {
		ln = opts.WrapListener(ln)
	}
	return &Listener{
		Name: opts.Listener.Name, opts: opts, ln: ln,
		log:   opts.Log.With(zap.String("listener", opts.Listener.Name)),
		conns: map[*conn]struct{}{}, done: make(chan struct{}),
	}, nil
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Serve accepts until Shutdown; it returns at once.
func (l *Listener) Serve() {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(l.done)
		var backoff time.Duration
		for {
			c, err := l.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
					time.Sleep(backoff)
					continue
				}
				l.log.Error("accept failed; listener stopped", zap.Error(err))
				return
			}
			backoff = 0
			cn := &conn{l: l, raw: c, down: c}
			if !l.track(cn) {
				c.Close()
				return
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer l.untrack(cn)
				cn.serve()
			}()
		}
	}()
}

func (l *Listener) track(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c *conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Shutdown stops accepting and lets open connections run until they end
// or ctx is done; then it closes what is left, as Envoy's drain does for
// tcp_proxy (a TCP stream has no request boundary to stop at).
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.ln.Close()
	<-l.done
	waited := make(chan struct{})
	go func() { l.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	n := len(l.conns)
	for c := range l.conns {
		c.abort()
	}
	l.mu.Unlock()
	<-waited
	return fmt.Errorf("listener %q: %d connections closed at the drain deadline", l.Name, n)
}
