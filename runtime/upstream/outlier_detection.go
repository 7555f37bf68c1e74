package upstream

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
)

// Istio's outlierDetection defaults, except max_ejection_percent: Istio
// documents 10% like Envoy; we keep Envoy's rule that one endpoint can
// always be ejected, so small clusters still shed a bad endpoint.
const (
	defaultConsecutive5xx   = 5
	defaultOutlierInterval  = 10 * time.Second
	defaultBaseEjectionTime = 30 * time.Second
	defaultMaxEjectionPct   = 10
	// maxEjectionTime caps base_ejection_time x ejections, as Envoy's
	// max_ejection_time default.
	maxEjectionTime = 300 * time.Second
)

// outlierDetector ejects an endpoint after consecutive_5xx failures in a
// row: 5xx responses and locally seen connect failures, resets and
// timeouts (Envoy maps those to 5xx when it does not split local errors).
// An ejection lasts base_ejection_time times the endpoint's ejection count;
// the count drops by one for each interval the endpoint then stays in, so
// an endpoint that recovered is not punished for an old streak. Un-ejection
// is a timer, not a sweep, so the picker's check is one atomic load.
type outlierDetector struct {
	c           *Cluster
	consecutive int32
	interval    time.Duration
	base        time.Duration
	maxPercent  int

	mu      sync.Mutex
	ejected int
	closed  bool
}

func newOutlierDetector(c *Cluster, cfg *config.Outlier) *outlierDetector {
	o := &outlierDetector{
		c:           c,
		consecutive: int32(orDefault(cfg.Consecutive5xx, defaultConsecutive5xx)),
		interval:    durOr(cfg.Interval, defaultOutlierInterval),
		base:        durOr(cfg.BaseEjectionTime, defaultBaseEjectionTime),
		maxPercent:  orDefault(cfg.MaxEjectionPercent, defaultMaxEjectionPct),
	}
	return o
}

// record notes one try's result. Successes only write when a streak was
// running, so the hot path stays a load.
func (o *outlierDetector) record(e *endpoint, failed bool) {
	if !failed {
		if e.consecutive5xx.Load() != 0 {
			e.consecutive5xx.Store(0)
		}
		return
	}
	if e.consecutive5xx.Add(1) >= o.consecutive {
		o.eject(e)
	}
}

func (o *outlierDetector) eject(e *endpoint) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.consecutive5xx.Store(0)
	if o.closed || e.ejected.Load() || e.removed.Load() {
		return
	}
	total := 0
	if hs := o.c.hosts.Load(); hs != nil {
		total = len(hs.hosts)
	}
	if o.ejected > 0 && (o.ejected+1)*100 > o.maxPercent*total {
		o.c.log.Debug("outlier ejection skipped: max_ejection_percent reached", zap.String("endpoint", e.addr))
		return
	}
	now := time.Now()
	if e.ejections > 0 && !e.lastUneject.IsZero() {
		e.ejections = max(0, e.ejections-int(now.Sub(e.lastUneject)/o.interval))
	}
	e.ejections++
	d := min(o.base*time.Duration(e.ejections), max(maxEjectionTime, o.base))
	e.ejected.Store(true)
	e.unejectAt = now.Add(d)
	o.ejected++
	e.timer = time.AfterFunc(d, func() { o.uneject(e) })
	o.c.m.ejections.Inc()
	o.c.log.Info("endpoint ejected", zap.String("endpoint", e.addr), zap.Duration("for", d), zap.Int("ejections", e.ejections))
}

// restore gives a new endpoint the ejection state its predecessor had:
// still ejected for the time that was left, and the ejection count.
func (o *outlierDetector) restore(e *endpoint, ejected bool, left time.Duration, ejections int, lastUneject time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.ejections, e.lastUneject = ejections, lastUneject
	if !ejected || o.closed || e.ejected.Load() {
		return
	}
	e.ejected.Store(true)
	e.unejectAt = time.Now().Add(left)
	o.ejected++
	e.timer = time.AfterFunc(left, func() { o.uneject(e) })
}

func (o *outlierDetector) uneject(e *endpoint) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !e.ejected.Load() {
		return
	}
	e.ejected.Store(false)
	e.lastUneject = time.Now()
	e.unejectAt = time.Time{}
	e.timer = nil
	o.ejected--
	if !o.closed {
		o.c.log.Info("endpoint returned from ejection", zap.String("endpoint", e.addr))
	}
}

// state is when an ejected endpoint comes back and its ejection count,
// for /clusters.
func (o *outlierDetector) state(e *endpoint) (time.Time, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return e.unejectAt, e.ejections
}

func (o *outlierDetector) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if hs := o.c.hosts.Load(); hs != nil {
		for _, e := range hs.hosts {
			if e.timer != nil {
				e.timer.Stop()
				e.timer = nil
			}
		}
	}
}
