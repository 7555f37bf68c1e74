package proxy

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stats"
	"github.com/sluice-proxy/sluice/runtime/stream"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// Mirrors sends the shadow copies of mirrored routes (Envoy's
// request_mirror_policies, Istio's mirror): fire and forget. A copy goes
// to the route's mirror cluster with "-shadow" appended to its host; its
// response is read and thrown away; its latency and failures never reach
// the request it copies. The work is bounded: at most max copies are in
// flight at once (one goroutine each), a copy past that is dropped and
// counted, and a copy lasts at most its route's timeout.
//
// One Mirrors serves every listener of a process across reloads, so the
// bound holds for the process, not per config generation.
type Mirrors struct {
	slots    chan struct{}
	inFlight *stats.Gauge
	log      *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // orders wg.Add against Close's Wait
	closed bool
	wg     sync.WaitGroup
}

// NewMirrors returns the sender of shadow copies, with at most max in
// flight (max <= 0: config.DefaultMaxMirrorsInFlight).
func NewMirrors(max int, reg *stats.Registry, log *zap.Logger) *Mirrors {
	if max <= 0 {
		max = config.DefaultMaxMirrorsInFlight
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Mirrors{
		slots:    make(chan struct{}, max),
		inFlight: reg.Gauge("sluice_http_mirror_in_flight", "Mirrored (shadow) requests in flight."),
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
	}
}

// Close aborts the copies in flight and waits for their goroutines; later
// copies are dropped. Close is idempotent.
func (m *Mirrors) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// mirrorPolicy is a route's mirror, compiled once per snapshot.
type mirrorPolicy struct {
	cluster string
	percent float64
	// sent: the shadow answered (any status); failed: it did not.
	sent, failed *stats.Counter
	// dropped: not sent, because max_mirrors_in_flight copies were in
	// flight (busy) or the body did not fit the buffer or was not read
	// to its end (body).
	droppedBusy, droppedBody *stats.Counter
}

func newMirrorPolicy(reg *stats.Registry, rt config.Route) *mirrorPolicy {
	if rt.Mirror == "" {
		return nil
	}
	p := &mirrorPolicy{cluster: rt.Mirror, percent: config.DefaultMirrorPercentage}
	if rt.MirrorPercentage != nil {
		p.percent = *rt.MirrorPercentage
	}
	const reqHelp = "Mirrored (shadow) requests by route, mirror cluster and result (sent: the shadow answered; failed: it did not)."
	p.sent = reg.Counter("sluice_http_mirror_requests_total", reqHelp, "route", rt.Name, "cluster", rt.Mirror, "result", "sent")
	p.failed = reg.Counter("sluice_http_mirror_requests_total", reqHelp, "route", rt.Name, "cluster", rt.Mirror, "result", "failed")
	const dropHelp = "Mirrored requests not sent, by route and reason (in_flight_limit: server.max_mirrors_in_flight reached; body: the body did not fit max_request_body_buffer or was not read to its end)."
	p.droppedBusy = reg.Counter("sluice_http_mirror_dropped_total", dropHelp, "route", rt.Name, "reason", "in_flight_limit")
	p.droppedBody = reg.Counter("sluice_http_mirror_dropped_total", dropHelp, "route", rt.Name, "reason", "body")
	return p
}

// selected draws whether one request is mirrored.
func (p *mirrorPolicy) selected() bool {
	return p.percent >= 100 || rand.Float64()*100 < p.percent
}

// shadowHost appends "-shadow" to a host, before its port, as Envoy does
// ("orders:8080" becomes "orders-shadow:8080").
func shadowHost(h string) string {
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		return h + "-shadow"
	}
	return net.JoinHostPort(host+"-shadow", port)
}

// pendingMirror is the copy of one request, made when the request goes
// upstream and sent once its body is known: at once without a body, or
// when the body has been read in full into the replay buffer.
type pendingMirror struct {
	m       *Mirrors
	p       *mirrorPolicy
	cl      *upstream.Cluster
	headers *stream.HeaderMap // the copy's own: the request's map moves on
	pick    upstream.Pick
	timeout time.Duration
	once    sync.Once
}

// newPendingMirror snapshots the request as it is about to be forwarded
// (rewritten, hop-by-hop headers removed, forwarding headers set); nil
// when the route has no mirror, the draw says no, or the request cannot be
// copied (an upgrade).
func (x *activeStream) newPendingMirror(upgrade bool) *pendingMirror {
	p, m := x.ri.mirror, x.cm.Mirrors
	if p == nil || m == nil || upgrade || !p.selected() {
		return nil
	}
	cl := x.snap.Upstream.Cluster(p.cluster)
	if cl == nil {
		p.failed.Inc()
		return nil
	}
	h := x.s.reqHeaders
	authority, _ := h.GetPseudo(stream.PseudoAuthority)
	headers := h.Clone()
	headers.Set(stream.Authority, shadowHost(string(authority)))
	target, _ := h.GetPseudo(stream.PseudoPath)
	u, err := url.ParseRequestURI(string(target))
	if err != nil {
		// CONNECT's authority form: the copy goes to "/".
		u = &url.URL{}
	}
	headers.Set(stream.Path, u.RequestURI())
	clientIP := x.ctx.clientIPFor(x.remoteAddr)
	timeout := x.rt.Timeout.D()
	if timeout <= 0 {
		timeout = config.DefaultRouteTimeout
	}
	return &pendingMirror{
		m: m, p: p, cl: cl,
		headers: headers,
		pick:    upstream.Pick{HashKey: cl.HashKey(h, clientIP)},
		timeout: timeout,
	}
}

// bodyDone is the replay buffer's report: the whole body (complete), or
// none that can be copied.
func (pm *pendingMirror) bodyDone(body []byte, complete bool) {
	if complete {
		pm.send(body)
	} else {
		pm.drop()
	}
}

// drop gives up the copy unless it was sent already: the request ended
// before its body was read in full.
func (pm *pendingMirror) drop() {
	pm.once.Do(pm.p.droppedBody.Inc)
}

// send starts the copy with body (nil for none), unless max copies are in
// flight. It never blocks.
func (pm *pendingMirror) send(body []byte) {
	pm.once.Do(func() {
		m := pm.m
		select {
		case m.slots <- struct{}{}:
		default:
			pm.p.droppedBusy.Inc()
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			<-m.slots
			pm.p.droppedBusy.Inc()
			return
		}
		m.wg.Add(1)
		m.mu.Unlock()
		m.inFlight.Add(1)
		go func() {
			defer func() {
				m.inFlight.Add(-1)
				<-m.slots
				m.wg.Done()
			}()
			pm.roundTrip(body)
		}()
	})
}

// mirrorDrainLimit is how much of a shadow's response body is read so its
// connection can be reused; past it the connection is closed instead.
const mirrorDrainLimit = 64 << 10

func (pm *pendingMirror) roundTrip(body []byte) {
	ctx, cancel := context.WithTimeout(pm.m.ctx, pm.timeout)
	defer cancel()
	req := &upstream.Request{Headers: pm.headers}
	if len(body) > 0 {
		// The replay buffer's, never modified once complete.
		req.Body = body
	}
	resp, err := pm.cl.Send(ctx, req, pm.pick)
	if err != nil {
		pm.p.failed.Inc()
		if ce := pm.m.log.Check(zap.DebugLevel, "mirror failed"); ce != nil {
			ce.Write(zap.String("cluster", pm.p.cluster), zap.Error(err))
		}
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body(), mirrorDrainLimit))
	resp.Close()
	pm.p.sent.Inc()
}
