package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// Defaults, as Envoy's circuit breaker and Istio's connection pool.
const (
	defaultMaxConnections = 1024
	defaultMaxPending     = 1024
	defaultMaxRequests    = 1024
	defaultMaxRetries     = 3
	defaultIdleTimeout    = 90 * time.Second
	defaultConnectTimeout = 5 * time.Second
	defaultDNSRefresh     = 30 * time.Second
)

// Pick steers the endpoint choice of one try.
type Pick struct {
	// Subset keeps only endpoints carrying all these labels; nil for all.
	// The map is read, never kept: the cluster caches a copy per distinct
	// selector.
	Subset map[string]string
	// HashKey feeds ring_hash (a header value or the client IP, as the
	// cluster's hash_on says; see Cluster.HashKey). Other balancers ignore it.
	HashKey string
}

// Cluster is one named group of endpoints with its connection pool, load
// balancer, circuit breaker, outlier detector and health checker. It is safe
// for concurrent use and may be shared by several Managers across reloads.
type Cluster struct {
	name     string
	cfg      config.Cluster
	log      *zap.Logger
	protocol string
	scheme   string

	pool      connPool
	spool     streamPool // Send's side of pool
	closePool func()
	limiter   *connLimiter
	dialer    *dialer // the pools' and Connect's
	newLB     lbFactory

	hosts atomic.Pointer[hostSet]

	maxRequests, maxPending, maxRetries int64
	// active counts requests in flight (max_requests, rq_active, the
	// admin's count): from the pick until the response is complete, as
	// Envoy's. open counts tries whose Response is not closed yet, which
	// still hold a connection: the last one of a closed cluster frees its
	// pool.
	active, pending, retries, open atomic.Int64
	// slots holds one slot per http1 request that owns a connection, so
	// requests beyond max_connections wait as pending (Envoy's http1 pool)
	// instead of failing. nil for multiplexed protocols.
	slots *connSlots

	m clusterMetrics

	outlier *outlierDetector
	health  *healthChecker
	disc    *discovery

	refs   atomic.Int32 // managers holding the cluster
	closed atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type clusterMetrics struct {
	cxActive, rqPending, rqActive                          *stats.Gauge
	rqTotal                                                [6]*stats.Counter // index: status/100, 0 = other
	failed                                                 [len(failureNames)]*stats.Counter
	cxOverflow, pendingOverflow, rqOverflow, retryOverflow *stats.Counter
	ejections                                              *stats.Counter
}

func newClusterMetrics(reg *stats.Registry, name string) clusterMetrics {
	var m clusterMetrics
	m.cxActive = reg.Gauge("sluice_upstream_cx_active", "Open upstream connections.", "cluster", name)
	m.rqPending = reg.Gauge("sluice_upstream_rq_pending", "Requests waiting for an upstream connection.", "cluster", name)
	m.rqActive = reg.Gauge("sluice_upstream_rq_active", "Upstream requests in flight.", "cluster", name)
	for i, class := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		m.rqTotal[i] = reg.Counter("sluice_upstream_rq_total", "Upstream responses by status class.", "cluster", name, "code_class", class)
	}
	for i, f := range failureNames {
		m.failed[i] = reg.Counter("sluice_upstream_rq_failed_total", "Upstream tries that got no response, by failure.", "cluster", name, "failure", f)
	}
	m.cxOverflow = reg.Counter("sluice_upstream_cx_overflow_total", "Connections refused by max_connections.", "cluster", name)
	m.pendingOverflow = reg.Counter("sluice_upstream_rq_pending_overflow_total", "Requests refused by max_pending_requests.", "cluster", name)
	m.rqOverflow = reg.Counter("sluice_upstream_rq_overflow_total", "Requests refused by max_requests.", "cluster", name)
	m.retryOverflow = reg.Counter("sluice_upstream_rq_retry_overflow_total", "Retries refused by max_retries.", "cluster", name)
	m.ejections = reg.Counter("sluice_upstream_ejections_total", "Outlier ejections.", "cluster", name)
	return m
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func durOr(d config.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d.D()
}

// newCluster builds a cluster. prev, when not nil, is the same cluster
// under its previous config: its endpoints' health and ejections carry over.
func newCluster(cfg config.Cluster, reg *stats.Registry, log *zap.Logger, opts *options, prev *Cluster) (*Cluster, error) {
	newLB, err := lbFactoryFor(cfg.LB)
	if err != nil {
		return nil, err
	}
	lim := cfg.Limits
	maxConns := orDefault(lim.MaxConnections, defaultMaxConnections)
	c := &Cluster{
		name:        cfg.Name,
		cfg:         cfg,
		log:         log.With(zap.String("cluster", cfg.Name)),
		protocol:    cfg.Protocol,
		newLB:       newLB,
		maxRequests: int64(orDefault(lim.MaxRequests, defaultMaxRequests)),
		maxPending:  int64(orDefault(lim.MaxPendingRequests, defaultMaxPending)),
		maxRetries:  int64(orDefault(lim.MaxRetries, defaultMaxRetries)),
		m:           newClusterMetrics(reg, cfg.Name),
	}
	if c.protocol == "" {
		c.protocol = "http1"
	}
	connectTimeout := durOr(cfg.ConnectTimeout, defaultConnectTimeout)
	idle := durOr(lim.IdleTimeout, defaultIdleTimeout)
	c.limiter = &connLimiter{max: int64(maxConns), timeout: connectTimeout, gauge: c.m.cxActive, overflow: c.m.cxOverflow}
	d := &dialer{
		net:     net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second},
		limiter: c.limiter,
		sni:     c.sniFor,
		log:     c.log,
	}
	c.dialer = d
	loadTLS := func() (*tlsSource, error) {
		return newTLSSource(cfg.TLS, cfg.Generated, c.log)
	}
	switch c.protocol {
	case "http1":
		c.scheme = "http"
		if cfg.TLS != nil {
			c.scheme = "https"
			if d.tls, err = loadTLS(); err != nil {
				return nil, err
			}
		}
		p := newHTTP1Pool(d, lim, idle, maxConns)
		c.pool, c.spool, c.closePool = p, p, p.closeAll
		c.slots = newConnSlots(maxConns)
	case "h2", "h2c":
		c.scheme = "http"
		if c.protocol == "h2" {
			c.scheme = "https"
			if d.tls, err = loadTLS(); err != nil {
				return nil, err
			}
		}
		p := newHTTP2Pool(d, idle, c.protocol == "h2c", lim.MaxRequestsPerConnection)
		p.enterPending, p.leavePending = c.enterPending, c.leavePending
		c.pool, c.spool, c.closePool = p, p, p.closeAll
	case "downstream":
		// The request's own protocol, as Envoy's use_downstream_protocol
		// and Istio's default (no h2 upgrade): HTTP/1.x over the http1
		// pool, HTTP/2 and HTTP/3 over h2 (h2c without TLS). Go's HTTP/2
		// client and server hand every request between four or more
		// goroutines each way; the http1 pool writes and reads on the
		// caller's, which for plain requests costs about half as much.
		c.scheme = "http"
		if cfg.TLS != nil {
			c.scheme = "https"
			if d.tls, err = loadTLS(); err != nil {
				return nil, err
			}
		}
		h1 := newHTTP1Pool(d, lim, idle, maxConns)
		h2 := newHTTP2Pool(d, idle, cfg.TLS == nil, lim.MaxRequestsPerConnection)
		h2.enterPending, h2.leavePending = c.enterPending, c.leavePending
		dp := &downstreamPool{h1: h1, h2: h2}
		c.pool, c.spool = dp, dp
		c.closePool = func() { h1.closeAll(); h2.closeAll() }
		c.slots = newConnSlots(maxConns)
	case "h3":
		c.scheme = "https"
		if d.tls, err = loadTLS(); err != nil {
			return nil, err
		}
		t := newHTTP3Pool(d, idle)
		c.pool = t
		c.spool = &httpSender{rt: t.RoundTrip, scheme: c.scheme}
		c.closePool = func() {
			// Closing the transport aborts its streams: only once the
			// last request ended; until then drop idle connections.
			if c.open.Load() == 0 {
				t.Close()
			} else {
				t.CloseIdleConnections()
			}
		}
	default:
		return nil, fmt.Errorf("unknown protocol %q (want http1, h2, h2c, h3 or downstream)", cfg.Protocol)
	}
	c.limiter.closeIdle = c.pool.CloseIdleConnections
	if cfg.Outlier != nil {
		c.outlier = newOutlierDetector(c, cfg.Outlier)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.disc, err = newDiscovery(c, opts)
	if err != nil {
		cancel()
		c.closePool()
		return nil, err
	}
	if err := c.disc.start(ctx); err != nil {
		cancel()
		c.closePool()
		return nil, err
	}
	if prev != nil {
		c.inherit(prev)
	}
	if cfg.HealthCheck != nil {
		c.health = newHealthChecker(c, cfg.HealthCheck)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.health.run(ctx)
		}()
	}
	c.refs.Store(1)
	return c, nil
}

// inherit copies the health and ejection state of the endpoints prev also
// has, so editing a cluster (adding an endpoint, changing a limit) neither
// forgives an ejected endpoint nor trusts an unhealthy one. State is
// copied, not shared: prev keeps serving its in-flight requests until its
// manager closes.
func (c *Cluster) inherit(prev *Cluster) {
	hs, old := c.hosts.Load(), prev.hosts.Load()
	if hs == nil || old == nil {
		return
	}
	now := time.Now()
	for _, e := range hs.hosts {
		o := old.byAddr[e.addr]
		if o == nil {
			continue
		}
		// Only a health checker can clear the flag; without one it
		// would stick.
		if c.cfg.HealthCheck != nil && prev.cfg.HealthCheck != nil && o.unhealthy.Load() {
			e.unhealthy.Store(true)
		}
		if c.outlier == nil || prev.outlier == nil {
			continue
		}
		prev.outlier.mu.Lock()
		ejected, until, count, last := o.ejected.Load(), o.unejectAt, o.ejections, o.lastUneject
		prev.outlier.mu.Unlock()
		c.outlier.restore(e, ejected && until.After(now), until.Sub(now), count, last)
	}
}

// Name is the cluster's configured name.
func (c *Cluster) Name() string { return c.name }

// Protocol is http1, h2, h2c, h3 or downstream.
func (c *Cluster) Protocol() string { return c.protocol }

// Config is the cluster's configuration (read only: metadata for filters).
func (c *Cluster) Config() *config.Cluster { return &c.cfg }

// sniFor is the TLS server name for an endpoint when tls.server_name is
// unset: the DNS name it was resolved from, else its IP.
func (c *Cluster) sniFor(addr string) string {
	if hs := c.hosts.Load(); hs != nil {
		if e := hs.byAddr[addr]; e != nil && e.host != "" {
			return e.host
		}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// HashKey computes the ring_hash key the cluster's hash_on asks for:
// "header:NAME" reads that field of the request map h, anything else (the
// default "client_ip") returns clientIP.
func (c *Cluster) HashKey(h *stream.HeaderMap, clientIP string) string {
	if on := c.cfg.HashOn; len(on) > len("header:") && on[:len("header:")] == "header:" {
		v, _ := h.Get(on[len("header:"):])
		return string(v)
	}
	return clientIP
}

// TryAcquireRetry takes one of max_retries concurrent retry tokens; the
// proxy calls it before each retry and ReleaseRetry when the retry ends.
// false means the retry budget is exhausted: send the last result instead.
func (c *Cluster) TryAcquireRetry() bool {
	if c.retries.Add(1) > c.maxRetries {
		c.retries.Add(-1)
		c.m.retryOverflow.Inc()
		return false
	}
	return true
}

// ReleaseRetry gives back a token from TryAcquireRetry.
func (c *Cluster) ReleaseRetry() { c.retries.Add(-1) }

// startTry takes what a try needs before it is sent: a max_requests
// token, an http1 connection slot unless the try is multiplexed (waiting
// as a pending request, bounded by ctx), and an endpoint. The try then
// ends with tryFailed, or once its response is done with endRequest (the
// response complete) and endTry (the response closed).
func (c *Cluster) startTry(ctx context.Context, multiplexed bool, pick Pick) (ep *endpoint, slot, waited bool, err error) {
	if c.active.Add(1) > c.maxRequests {
		return nil, false, false, c.overflow()
	}
	c.m.rqActive.Add(1)
	c.open.Add(1)
	slot = c.slots != nil && !multiplexed
	if slot {
		if waited, err = c.waitSlot(ctx); err != nil {
			c.releaseRequest(nil, false)
			return nil, false, waited, err
		}
	}
	ep = c.pickEndpoint(pick)
	if ep == nil {
		return nil, false, waited, c.noEndpoint(slot)
	}
	ep.active.Add(1)
	return ep, slot, waited, nil
}

// overflow is startTry's failure at max_requests, its token given back.
// Out of line, as noEndpoint: startTry is inlined into Send, and the
// error's making (fmt.Errorf, the *Error) would add to Send's frame and
// code on every try.
//
//go:noinline
func (c *Cluster) overflow() error {
	c.active.Add(-1)
	c.m.rqOverflow.Inc()
	return c.fail(Overflow, "", fmt.Errorf("max_requests %d reached: %w", c.maxRequests, ErrOverflow))
}

// noEndpoint is startTry's failure when no endpoint is healthy: what the
// try took is given back.
//
//go:noinline
func (c *Cluster) noEndpoint(slot bool) error {
	c.releaseRequest(nil, slot)
	return c.fail(NoHealthyUpstream, "", ErrNoHealthyUpstream)
}

// tryFailed ends a try that got no response: the failure is classified
// (the caller's deadline or cancel wins over what the transport made of
// it), counted against the endpoint's outlier state and returned as an
// *Error.
func (c *Cluster) tryFailed(ctx context.Context, ep *endpoint, slot bool, err error) error {
	f := classify(err)
	if ctxErr := ctx.Err(); ctxErr != nil && (f != ConnectFailure || errors.Is(err, ctxErr)) {
		f = classify(ctxErr)
	}
	if c.outlier != nil && (f == ConnectFailure || f == Reset || f == Timeout) {
		c.outlier.record(ep, true)
	}
	c.releaseRequest(ep, slot)
	return c.fail(f, ep.addr, err)
}

// tryAnswered counts a response by status, for metrics and outlier
// detection.
func (c *Cluster) tryAnswered(ep *endpoint, status int) {
	if c.outlier != nil {
		c.outlier.record(ep, status >= 500)
	}
	if cls := status / 100; cls >= 1 && cls <= 5 {
		c.m.rqTotal[cls].Inc()
	} else {
		c.m.rqTotal[0].Inc()
	}
}

func (c *Cluster) fail(f Failure, addr string, err error) *Error {
	c.m.failed[f].Inc()
	return &Error{Failure: f, Cluster: c.name, Endpoint: addr, Err: err}
}

// waitSlot takes an http1 connection slot, waiting as a pending request
// (bounded by max_pending_requests and ctx) when every slot is held.
func (c *Cluster) waitSlot(ctx context.Context) (waited bool, err error) {
	if c.slots.tryTake() {
		return false, nil
	}
	return c.waitPending(ctx)
}

// waitPending is waitSlot's wait, when every slot is held.
func (c *Cluster) waitPending(ctx context.Context) (waited bool, err error) {
	if err := c.enterPending(); err != nil {
		return false, c.fail(Overflow, "", err)
	}
	defer c.leavePending()
	if err := c.slots.take(ctx); err != nil {
		return true, c.fail(classify(err), "", fmt.Errorf("waiting for a connection: %w", err))
	}
	return true, nil
}

// enterPending counts a request that waits for a connection (Envoy's
// pending request): an http1 request when every connection is busy, an h2
// request while the connection it will use is being set up.
func (c *Cluster) enterPending() error {
	if c.pending.Add(1) > c.maxPending {
		c.pending.Add(-1)
		c.m.pendingOverflow.Inc()
		return fmt.Errorf("max_pending_requests %d reached: %w", c.maxPending, ErrOverflow)
	}
	c.m.rqPending.Add(1)
	return nil
}

func (c *Cluster) leavePending() {
	c.pending.Add(-1)
	c.m.rqPending.Add(-1)
}

// releaseRequest ends both halves of a try's accounting at once (a try
// that got no response, an upgraded stream that closed); slot says it
// held an http1 connection slot.
func (c *Cluster) releaseRequest(ep *endpoint, slot bool) {
	c.endRequest(ep)
	c.endTry(slot)
}

// endRequest ends a request's time in flight: its max_requests token and
// the endpoint's count that least_request compares. It comes when the
// response is complete (its body read to the end, or found to have none),
// before the proxy writes the last of it to the client, as Envoy's
// upstream request ends at the response's end: a client that sends its
// next request as soon as it has the answer must not find this one still
// counted.
func (c *Cluster) endRequest(ep *endpoint) {
	if ep != nil {
		ep.active.Add(-1)
	}
	c.m.rqActive.Add(-1)
	c.active.Add(-1)
}

// endTry ends what a try holds until its Response is closed: the http1
// connection slot (the connection is busy until then) and its place among
// the tries a closed cluster waits for.
func (c *Cluster) endTry(slot bool) {
	if slot {
		c.slots.give()
	}
	if c.open.Add(-1) == 0 && c.closed.Load() {
		// The last try of a closed cluster frees its connections.
		c.closePool()
	}
}

func (c *Cluster) pickEndpoint(p Pick) *endpoint {
	hs := c.hosts.Load()
	if hs == nil {
		return nil
	}
	lb := hs.balancerFor(p.Subset)
	if lb == nil {
		return nil
	}
	return lb.pick(p.HashKey)
}

// close stops discovery and health checks and releases connections; the
// caller holds the last reference.
func (c *Cluster) close() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	c.cancel()
	c.wg.Wait()
	if c.outlier != nil {
		c.outlier.close()
	}
	c.closePool()
}
