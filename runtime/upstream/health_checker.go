package upstream

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

const (
	defaultHCInterval           = 10 * time.Second
	defaultHCTimeout            = time.Second
	defaultHCHealthyThreshold   = 2
	defaultHCUnhealthyThreshold = 3
)

// healthChecker sends GET path to every endpoint each interval, over the
// cluster's own protocol and pool (not counted as requests). An endpoint
// turns unhealthy after unhealthy_threshold failures in a row and healthy
// again after healthy_threshold passes. Endpoints start healthy so a fresh
// cluster serves at once; the first round runs immediately. Expected
// statuses default to 200-299.
type healthChecker struct {
	c         *Cluster
	path      string
	interval  time.Duration
	timeout   time.Duration
	healthy   int
	unhealthy int
	expected  []int
}

func newHealthChecker(c *Cluster, cfg *config.HealthCheck) *healthChecker {
	path := cfg.Path
	if path == "" {
		path = "/"
	}
	return &healthChecker{
		c:         c,
		path:      path,
		interval:  durOr(cfg.Interval, defaultHCInterval),
		timeout:   durOr(cfg.Timeout, defaultHCTimeout),
		healthy:   orDefault(cfg.HealthyThreshold, defaultHCHealthyThreshold),
		unhealthy: orDefault(cfg.UnhealthyThreshold, defaultHCUnhealthyThreshold),
		expected:  cfg.ExpectedStatuses,
	}
}

func (h *healthChecker) run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round checks every endpoint in parallel and waits for all, so the
// per-endpoint counters have a single writer at a time.
func (h *healthChecker) round(ctx context.Context) {
	hs := h.c.hosts.Load()
	if hs == nil {
		return
	}
	var wg sync.WaitGroup
	for _, e := range hs.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.check(ctx, e)
		}()
	}
	wg.Wait()
}

func (h *healthChecker) check(ctx context.Context, e *endpoint) {
	ok, reason := h.probe(ctx, e)
	if ctx.Err() != nil {
		return
	}
	if ok {
		e.hcFails = 0
		e.hcPasses++
		if e.unhealthy.Load() && e.hcPasses >= h.healthy {
			e.unhealthy.Store(false)
			h.c.log.Info("endpoint healthy", zap.String("endpoint", e.addr))
		}
		return
	}
	e.hcPasses = 0
	e.hcFails++
	if !e.unhealthy.Load() && e.hcFails >= h.unhealthy {
		e.unhealthy.Store(true)
		h.c.log.Warn("endpoint unhealthy", zap.String("endpoint", e.addr), zap.String("reason", reason))
	}
}

func (h *healthChecker) probe(ctx context.Context, e *endpoint) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	authority := e.addr
	if e.host != "" {
		authority = e.host
	}
	hm := new(stream.HeaderMap)
	hm.Add(stream.Method, http.MethodGet)
	hm.Add(stream.Path, h.path)
	hm.Add(stream.Authority, authority)
	hm.Add("user-agent", "sluice-health-check")
	// Straight to the pool: a check is not one of the cluster's requests.
	st, err := h.c.spool.send(ctx, &Request{Headers: hm}, e.addr, 0)
	if err != nil {
		return false, err.Error()
	}
	resp := st.handle()
	status := resp.Status() // st is the connection's, reused after Close
	// Drain a little so the connection can be reused.
	io.CopyN(io.Discard, resp.Body(), 4<<10)
	resp.Close()
	if h.statusOK(status) {
		return true, ""
	}
	return false, strconv.Itoa(status) + " " + http.StatusText(status)
}

func (h *healthChecker) statusOK(code int) bool {
	if len(h.expected) == 0 {
		return code >= 200 && code < 300
	}
	for _, s := range h.expected {
		if s == code {
			return true
		}
	}
	return false
}
