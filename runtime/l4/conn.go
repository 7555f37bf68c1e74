package l4

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/mesh"
	up "github.com/sluice-proxy/sluice/runtime/upstream"
)

// Directions of a connection's bytes.
const (
	downstream = 0 // client -> backend, on_downstream_data, filters in order
	upstream   = 1 // backend -> client, on_upstream_data, filters in reverse
)

// halves names each direction as the filter contract does.
var halves = [2]filter.Direction{downstream: filter.Request, upstream: filter.Response}

// conn is one proxied TCP connection.
type conn struct {
	l    *Listener
	raw  net.Conn // as accepted; closing it ends a TLS one too
	down net.Conn
	up   net.Conn
	tls  *tls.ConnectionState
	res  *Resolution

	ctx    context.Context
	cancel context.CancelFunc

	// mu serialises filter callbacks: one instance, one goroutine at a
	// time, and the pending bytes of each half.
	mu       sync.Mutex
	filters  []*netFilter
	pending  [2][]byte
	eos      [2]bool
	ended    [2]bool // the half's end was passed on
	pausedAt [2]int  // filter index that paused the half, -1 when flowing
	wake     chan struct{}
	// order[d] keeps half d's writes in order between the pump and a
	// resume; mu is never held while writing to a socket, so one slow
	// peer cannot stall the other half's filters.
	order [2]sync.Mutex

	closedBy atomic.Int32 // 0 none, 1 filter or drain (local)
	aborted  atomic.Bool
	bytes    [2]atomic.Int64

	// pmu guards what properties read: a plugin's tick may ask for them
	// while another plugin's data callback runs.
	pmu   sync.Mutex
	props map[string][]byte
	// attrs are the connection-level attributes (Envoy's source.*,
	// destination.*, connection.*, upstream.address, cluster_*).
	attrs filter.Connection
}

// netFilter is one plugin's filter on this connection.
type netFilter struct {
	p       filter.NetworkFactory
	s       filter.NetworkFilter
	skipped bool // failed and fail-open
}

func (c *conn) serve() {
	start := time.Now()
	c.pausedAt = [2]int{-1, -1}
	c.wake = make(chan struct{}, 1)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer c.cancel()
	defer c.down.Close()
	log := c.l.log
	if cfg := c.l.opts.TLS; cfg != nil {
		tc := tls.Server(c.down, cfg)
		tc.SetDeadline(time.Now().Add(c.l.opts.HandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			// A refused peer certificate is logged by the verifier with
			// its reason; this is the connection's side of it.
			if ce := log.Check(zap.DebugLevel, "tls handshake failed"); ce != nil {
				ce.Write(zap.String("remote", c.down.RemoteAddr().String()), zap.Error(err))
			}
			return
		}
		tc.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		c.down, c.tls = tc, &cs
	}
	res, err := c.l.opts.Resolve()
	if err != nil {
		log.Warn("tcp connection refused", zap.String("remote", c.down.RemoteAddr().String()), zap.Error(err))
		return
	}
	c.res = res
	c.attrs = filter.Connection{
		ID:              filter.NextConnectionID(),
		Source:          c.down.RemoteAddr().String(),
		Destination:     c.down.LocalAddr().String(),
		ListenerName:    c.l.Name,
		ClusterName:     c.l.opts.Listener.Cluster,
		ClusterMetadata: res.ClusterMetadata,
	}
	if c.tls != nil {
		c.attrs.TLS = mesh.TLSInfo(c.tls)
	}
	if res.Release != nil {
		defer res.Release()
	}
	if !c.startFilters() {
		return
	}
	defer c.doneFilters()
	var upErr error
	if c.newConnection() {
		var backend net.Conn
		var addr string
		// The client's IP is the hash key, as tcp_proxy's source_ip hash
		// policy: a ring_hash cluster keeps a client on one endpoint.
		host, _, _ := net.SplitHostPort(c.attrs.Source)
		backend, addr, upErr = res.Upstream.Connect(c.ctx, up.Pick{HashKey: host})
		c.pmu.Lock()
		c.attrs.Upstream = addr
		c.pmu.Unlock()
		if upErr == nil {
			c.mu.Lock()
			c.up = backend
			// abort sets aborted before it looks for up under mu: either
			// it closes up or we see it was called.
			aborted := c.aborted.Load()
			c.mu.Unlock()
			if aborted {
				backend.Close()
			}
			c.proxy()
		} else {
			log.Warn("tcp upstream connect failed", zap.String("cluster", c.l.opts.Listener.Cluster), zap.Error(upErr))
			c.closedBy.Store(1)
		}
	}
	c.closeCallbacks()
	if a := c.l.opts.Access; a != nil {
		c.pmu.Lock()
		addr := c.attrs.Upstream
		c.pmu.Unlock()
		a.Info("connection",
			zap.String("listener", c.l.Name),
			zap.String("downstream", c.down.RemoteAddr().String()),
			zap.String("upstream", addr),
			zap.String("cluster", c.l.opts.Listener.Cluster),
			zap.String("source_principal", peerID(c.tls)),
			zap.Int64("bytes_received", c.bytes[downstream].Load()),
			zap.Int64("bytes_sent", c.bytes[upstream].Load()),
			zap.Duration("duration", time.Since(start)),
			zap.Bool("closed_by_proxy", c.closedBy.Load() != 0),
		)
	}
}

// startFilters opens a network stream per plugin. A plugin that cannot
// serve (no healthy instance) is skipped when it fails open; otherwise the
// connection is refused.
func (c *conn) startFilters() bool {
	for _, p := range c.res.Filters {
		f := &netFilter{p: p}
		s, err := p.NewNetworkFilter(c.ctx, c)
		if err != nil {
			if p.FailOpen() {
				c.l.log.Warn("network filter unavailable; skipped (failure = open)", zap.String("plugin", p.Name()), zap.Error(err))
				continue
			}
			c.l.log.Error("network filter unavailable; connection refused (failure = closed)", zap.String("plugin", p.Name()), zap.Error(err))
			c.doneFilters()
			return false
		}
		f.s = s
		c.filters = append(c.filters, f)
	}
	return true
}

func (c *conn) doneFilters() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.filters {
		if f.s != nil {
			f.s.OnDone()
			f.s = nil
		}
	}
	c.filters = nil
}

// failed applies a filter's failure policy to a callback error; it says
// whether the connection goes on.
func (c *conn) failed(f *netFilter, cb string, err error) bool {
	if f.p.FailOpen() {
		f.skipped = true
		c.l.log.Warn("network filter failed; skipped from now on (failure = open)", zap.String("plugin", f.p.Name()), zap.String("callback", cb), zap.Error(err))
		return true
	}
	c.l.log.Error("network filter failed; connection closed (failure = closed)", zap.String("plugin", f.p.Name()), zap.String("callback", cb), zap.Error(err))
	c.closedBy.Store(1)
	return false
}

// newConnection runs proxy_on_new_connection on each filter; a pause
// waits (bounded) for the filter to resume, a close ends the connection.
func (c *conn) newConnection() bool {
	for i := 0; i < len(c.filters); i++ {
		c.mu.Lock()
		f := c.filters[i]
		a := filter.Continue
		var err error
		if !f.skipped {
			a, err = f.s.OnNewConnection()
		}
		c.mu.Unlock()
		if err != nil && !c.failed(f, "on_new_connection", err) {
			return false
		}
		if c.closedBy.Load() != 0 {
			return false
		}
		if a == filter.StopIteration {
			select {
			case <-c.wake:
			case <-time.After(c.l.opts.HandshakeTimeout):
				c.l.log.Warn("network filter paused a new connection and never resumed it", zap.String("plugin", f.p.Name()))
				c.closedBy.Store(1)
				return false
			}
			if c.closedBy.Load() != 0 {
				return false
			}
		}
	}
	return true
}

// proxy pumps both halves until they end.
func (c *conn) proxy() {
	defer c.up.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pump(downstream, c.down) }()
	go func() { defer wg.Done(); c.pump(upstream, c.up) }()
	wg.Wait()
}

func (c *conn) dst(d int) net.Conn {
	if d == downstream {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.up
	}
	return c.down
}

// pump reads one half and passes it through the filters. The client
// ending its half is passed on as a half close; the backend ending its
// half ends the connection once the bytes are flushed (tcp_proxy).
func (c *conn) pump(d int, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		eos := err != nil
		if err != nil && !errors.Is(err, io.EOF) && !c.aborted.Load() {
			c.abort()
			return
		}
		if c.aborted.Load() {
			return
		}
		if !c.process(d, buf[:n], eos, 0) {
			c.abort()
			return
		}
		if eos {
			// process (or a later resume, while a filter holds the last
			// bytes) ends the half once everything went through; a filter
			// that never lets go gets the pause bound, then the connection
			// is closed.
			c.mu.Lock()
			ended := c.ended[d]
			c.mu.Unlock()
			if !ended {
				time.AfterFunc(c.l.opts.HandshakeTimeout, func() {
					c.mu.Lock()
					ended := c.ended[d]
					c.mu.Unlock()
					if !ended && !c.aborted.Load() {
						c.l.log.Warn("network filter held the end of a stream past the pause bound; connection closed")
						c.closedBy.Store(1)
						c.abort()
					}
				})
			}
			return
		}
	}
}

// process adds data to half d's pending bytes and runs the filters from
// index from; when they all continue, the bytes go to the other side.
func (c *conn) process(d int, data []byte, eos bool, from int) bool {
	c.order[d].Lock()
	defer c.order[d].Unlock()
	out, ok := c.filter(d, data, eos, from)
	if !ok {
		return false
	}
	if len(out) > 0 {
		if _, err := c.dst(d).Write(out); err != nil {
			return false
		}
	}
	c.mu.Lock()
	end := c.eos[d] && c.pausedAt[d] < 0 && !c.ended[d]
	if end {
		c.ended[d] = true
	}
	c.mu.Unlock()
	if end {
		if d == downstream {
			closeWrite(c.dst(d))
		} else {
			c.abort()
		}
	}
	return true
}

// filter runs the filters under mu; it returns the bytes to forward now
// (nil while a filter holds them).
func (c *conn) filter(d int, data []byte, eos bool, from int) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes[d].Add(int64(len(data)))
	if eos {
		c.eos[d] = true
	}
	if len(c.filters) == 0 {
		return data, true
	}
	c.pending[d] = append(c.pending[d], data...)
	if eos {
		c.eos[d] = true
	}
	buf := c.pending[d]
	n := len(c.filters)
	for k := from; k < n; k++ {
		i := k
		if d == upstream {
			i = n - 1 - k
		}
		f := c.filters[i]
		if f.skipped || f.s == nil {
			continue
		}
		out, a, err := f.s.OnData(halves[d], buf, c.eos[d])
		if err != nil {
			if !c.failed(f, "on_data", err) {
				return nil, false
			}
			continue
		}
		buf = out
		if c.closedBy.Load() != 0 {
			return nil, false
		}
		if a != filter.Continue {
			c.pending[d] = buf
			c.pausedAt[d] = k
			return nil, true
		}
	}
	c.pending[d] = nil
	c.pausedAt[d] = -1
	return buf, true
}

// resume continues half d after the filter that paused it.
func (c *conn) resume(d int) {
	c.mu.Lock()
	at := c.pausedAt[d]
	up := c.up
	c.mu.Unlock()
	if up == nil {
		// Still in on_new_connection.
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return
	}
	if at < 0 {
		return
	}
	if !c.process(d, nil, c.eosOf(d), at+1) {
		c.abort()
	}
}

func (c *conn) eosOf(d int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eos[d]
}

// abort closes both sides; the pumps end on their next read.
func (c *conn) abort() {
	if c.aborted.Swap(true) {
		return
	}
	c.cancel()
	c.raw.Close()
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	if up != nil {
		up.Close()
	}
}

// closeCallbacks tells the filters who closed each side.
func (c *conn) closeCallbacks() {
	local := c.closedBy.Load() != 0
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.filters {
		if f.skipped || f.s == nil {
			continue
		}
		if err := f.s.OnClose(filter.Request, local); err != nil {
			c.l.log.Debug("on_downstream_connection_close", zap.String("plugin", f.p.Name()), zap.Error(err))
		}
		if c.up != nil {
			if err := f.s.OnClose(filter.Response, local); err != nil {
				c.l.log.Debug("on_upstream_connection_close", zap.String("plugin", f.p.Name()), zap.Error(err))
			}
		}
	}
}

func closeWrite(c net.Conn) {
	switch w := c.(type) {
	case interface{ CloseWrite() error }:
		w.CloseWrite()
	default:
		c.Close()
	}
}

// filter.NetworkConnection, shared by the connection's filters.

// Continue resumes half d after the filter that paused it.
func (c *conn) Continue(d filter.Direction) {
	h := downstream
	if d == filter.Response {
		h = upstream
	}
	go c.resume(h)
}

// Close ends the connection: either half closed by a filter ends it, as a
// tcp_proxy does when one side goes.
func (c *conn) Close() {
	c.closedBy.Store(1)
	select {
	case c.wake <- struct{}{}:
	default:
	}
	go c.abortAfterCallback()
}

// abortAfterCallback waits for the callback in progress to return (it
// holds mu) so the filter's last bytes are not cut mid-callback.
func (c *conn) abortAfterCallback() {
	c.mu.Lock()
	c.mu.Unlock()
	c.abort()
}

// Attributes are the connection's attributes as they are now.
func (c *conn) Attributes() filter.Connection {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.attrs
}

func (c *conn) FilterState(key string) ([]byte, bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	v, ok := c.props[key]
	return v, ok
}

func (c *conn) SetFilterState(key string, v []byte) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.props == nil {
		c.props = map[string][]byte{}
	}
	c.props[key] = v
}

func peerID(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			return u.String()
		}
	}
	return ""
}
