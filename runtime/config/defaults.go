package config

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"
)

// Defaults stated in the field comments of config.go; keep the two in step.
const (
	DefaultAdminAddress         = "127.0.0.1:9901"
	DefaultDrainTimeout         = 15 * time.Second
	DefaultAccessLogFlush       = time.Second
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultIdleTimeout          = 60 * time.Second
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultMaxConcurrentStreams = 250
	// Envoy's HTTP/2 initial_stream_window_size and
	// initial_connection_window_size.
	DefaultInitialStreamWindowSize     = 256 << 10
	DefaultInitialConnectionWindowSize = 1 << 20
	DefaultMaxRequestBodyBuffer        = 1 << 20
	DefaultRouteTimeout                = 15 * time.Second
	DefaultRetryAttempts               = 2
	DefaultBackoffBase                 = 25 * time.Millisecond
	DefaultBackoffMax                  = 250 * time.Millisecond
	DefaultMemoryLimit                 = 64 << 20
	DefaultMaxModuleBytes              = 64 << 20
	DefaultCallTimeout                 = 100 * time.Millisecond
	DefaultDoneTimeout                 = 10 * time.Second
	DefaultRestartBackoff              = time.Second
	DefaultDNSRefresh                  = 30 * time.Second
	DefaultConnectTimeout              = 5 * time.Second
	DefaultUpstreamIdleTimeout         = 90 * time.Second
	DefaultCircuitLimit                = 1024
	DefaultMaxRetries                  = 3
	DefaultMaxMirrorsInFlight          = 128
	DefaultStreamIdleTimeout           = 5 * time.Minute
	DefaultMirrorPercentage            = 100.0
	DefaultPathNormalization           = "MERGE_SLASHES"
	DefaultPathEscapedSlashes          = "KEEP_UNCHANGED"
	DefaultPathParameters              = "STRIP"
)

// The values of path_normalization, path_with_escaped_slashes and
// path_parameters (Istio's and Envoy's enum names).
var (
	PathNormalizations   = []string{"NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"}
	PathEscapedSlashes   = []string{"KEEP_UNCHANGED", "REJECT_REQUEST", "UNESCAPE_AND_REDIRECT", "UNESCAPE_AND_FORWARD"}
	PathParameterActions = []string{"STRIP", "KEEP", "REJECT"}
)

// DefaultRetryOn is Istio's default retry condition list.
var defaultRetryOn = []string{"connect-failure", "refused-stream"}

// DefaultRetry returns Istio's default policy: 2 retries on connect-failure
// and refused-stream, Envoy's backoff. A fresh value each call, so callers
// cannot alter one another's.
func DefaultRetry() *Retry {
	return &Retry{
		Attempts:    DefaultRetryAttempts,
		On:          slices.Clone(defaultRetryOn),
		BackoffBase: Duration(DefaultBackoffBase),
		BackoffMax:  Duration(DefaultBackoffMax),
	}
}

func setDur(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

func setStr(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func setInt[T ~int | ~int64 | ~uint32](n *T, v T) {
	if *n == 0 {
		*n = v
	}
}

// applyDefaults fills every unset field with the default its comment
// states. ApplyMode runs it after generating items, so those get defaults
// too; it must stay idempotent.
func (c *Config) applyDefaults() {
	setStr(&c.Mode, "edge")
	if !c.Admin.Disabled {
		setStr(&c.Admin.Address, DefaultAdminAddress)
	}
	setDur(&c.Server.DrainTimeout, DefaultDrainTimeout)
	setDur(&c.AccessLog.FlushInterval, DefaultAccessLogFlush)
	setInt(&c.Server.MaxMirrorsInFlight, DefaultMaxMirrorsInFlight)
	setStr(&c.Server.PathNormalization, DefaultPathNormalization)
	setStr(&c.Server.PathWithEscapedSlashes, DefaultPathEscapedSlashes)
	setStr(&c.Server.PathParameters, DefaultPathParameters)
	if c.Server.WatchConfig == nil {
		t := true
		c.Server.WatchConfig = &t
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if len(l.Protocols) == 0 {
			if l.TLS != nil {
				l.Protocols = []string{"http1", "h2"}
			} else {
				l.Protocols = []string{"http1", "h2c"}
			}
		}
		if l.TLS != nil && l.TLS.ClientCA != "" && l.TLS.RequireClientCert == nil {
			t := true
			l.TLS.RequireClientCert = &t
		}
		setDur(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
		setDur(&l.IdleTimeout, DefaultIdleTimeout)
		setInt(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
		setInt(&l.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
		setInt(&l.InitialStreamWindowSize, DefaultInitialStreamWindowSize)
		setInt(&l.InitialConnectionWindowSize, DefaultInitialConnectionWindowSize)
		setInt(&l.MaxRequestBodyBuffer, DefaultMaxRequestBodyBuffer)
		setStr(&l.PathNormalization, c.Server.PathNormalization)
		setStr(&l.PathWithEscapedSlashes, c.Server.PathWithEscapedSlashes)
		setStr(&l.PathParameters, c.Server.PathParameters)
		if l.StreamIdleTimeout == nil && !slices.Contains(l.Protocols, "tcp") {
			d := Duration(DefaultStreamIdleTimeout)
			l.StreamIdleTimeout = &d
		}
	}
	for i := range c.Plugins {
		p := &c.Plugins[i]
		setStr(&p.Failure, "closed")
		setInt(&p.VM.Instances, runtime.GOMAXPROCS(0))
		setInt(&p.VM.MemoryLimit, DefaultMemoryLimit)
		setDur(&p.VM.CallTimeout, DefaultCallTimeout)
		setDur(&p.VM.DoneTimeout, DefaultDoneTimeout)
		setDur(&p.VM.RestartBackoff, DefaultRestartBackoff)
	}
	setStr(&c.SharedStore.Kind, "memory")
	if c.Wasm.CacheDir == "" {
		c.Wasm.CacheDir = defaultCacheDir()
	}
	setInt(&c.Wasm.MaxModuleBytes, DefaultMaxModuleBytes)
	fileRoutes := 0
	for i := range c.Routes {
		r := &c.Routes[i]
		if !r.Generated {
			if !c.defined("routes", fileRoutes, "timeout") {
				setDur(&r.Timeout, DefaultRouteTimeout)
			}
			fileRoutes++
		} else if !c.serviceTimeoutSet(r.Name) {
			setDur(&r.Timeout, DefaultRouteTimeout)
		}
		if r.Retry == nil {
			r.Retry = DefaultRetry()
		} else {
			rt := *r.Retry // a service's Retry is shared with its route; copy before filling
			setDur(&rt.BackoffBase, DefaultBackoffBase)
			setDur(&rt.BackoffMax, DefaultBackoffMax)
			if len(rt.On) == 0 {
				rt.On = slices.Clone(defaultRetryOn)
			}
			r.Retry = &rt
		}
		if r.Mirror != "" && r.MirrorPercentage == nil {
			p := DefaultMirrorPercentage
			r.MirrorPercentage = &p
		}
		anyWeight := false
		for j := range r.Backends {
			if r.Backends[j].Weight != 0 || c.defined("routes", i, "backends", j, "weight") {
				anyWeight = true
			}
		}
		if !anyWeight {
			// No weights at all means an even split; once any backend names
			// a weight, an unset one means 0, as Istio's does.
			for j := range r.Backends {
				r.Backends[j].Weight = 1
			}
		}
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		setStr(&cl.Protocol, "http1")
		setStr(&cl.LB, "round_robin")
		if cl.LB == "ring_hash" {
			setStr(&cl.HashOn, "client_ip")
		}
		setDur(&cl.DNSRefresh, DefaultDNSRefresh)
		setDur(&cl.ConnectTimeout, DefaultConnectTimeout)
		setInt(&cl.Limits.MaxConnections, DefaultCircuitLimit)
		setInt(&cl.Limits.MaxPendingRequests, DefaultCircuitLimit)
		setInt(&cl.Limits.MaxRequests, DefaultCircuitLimit)
		setInt(&cl.Limits.MaxRetries, DefaultMaxRetries)
		setDur(&cl.Limits.IdleTimeout, DefaultUpstreamIdleTimeout)
		if o := cl.Outlier; o != nil {
			// Istio's outlierDetection defaults.
			setInt(&o.Consecutive5xx, 5)
			setDur(&o.Interval, 10*time.Second)
			setDur(&o.BaseEjectionTime, 30*time.Second)
			setInt(&o.MaxEjectionPercent, 10)
		}
		if h := cl.HealthCheck; h != nil {
			setStr(&h.Path, "/")
			setDur(&h.Interval, 10*time.Second)
			setDur(&h.Timeout, time.Second)
			setInt(&h.HealthyThreshold, 2)
			setInt(&h.UnhealthyThreshold, 3)
		}
	}
	for i := range c.Authorization {
		setStr(&c.Authorization[i].Action, "ALLOW")
	}
}

// serviceTimeoutSet reports whether the route generated for a service
// takes an explicit timeout (possibly "0s") from its [[services]] entry.
func (c *Config) serviceTimeoutSet(route string) bool {
	for i, s := range c.Services {
		if OutboundPrefix+s.Name == route {
			return c.defined("services", i, "timeout")
		}
	}
	return false
}

func defaultCacheDir() string {
	// SLUICE_WASM_CACHE lets tests and CI share one cache across runs.
	if d := os.Getenv("SLUICE_WASM_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "sluice")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "sluice")
	}
	return "off"
}
