package proxy

import (
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-proxy/sluice/runtime/clock"
	"github.com/sluice-proxy/sluice/runtime/stream"
)

// finish records metrics and, when the access log is on, writes its line
// (writeAccess).
func (x *activeStream) finish(start time.Time) {
	if rec := recover(); rec != nil {
		defer panic(rec)
	}
	dur := clock.Since(start)
	if x.fm != nil && x.fm.feed != nil {
		x.received = x.fm.feed.read.Load()
	}
	x.received += x.bodyRead.Load()
	if x.idle != nil && x.idle.fired.Load() {
		x.details = "stream_idle_timeout"
		if x.ri != nil {
			x.ri.stats.idleTimeouts.Inc()
		}
	}
	if x.ri != nil {
		x.ri.stats.record(x.status, dur.Seconds())
	}
	if x.cm.access == nil {
		return
	}
	x.writeAccess(start, dur)
}

// writeAccess writes the access-log line: the fields of Envoy's default
// access log format under its operators' names (docs/access-log.md lists
// them), plus sluice's listener and, on mesh traffic, the two principals.
// Kept out of line: its zap fields take ~2 KB of stack, which finish,
// deferred on every request, would otherwise reserve with the log off
// (the bench), running its callees that much deeper into a cold stack.
//
//go:noinline
func (x *activeStream) writeAccess(start time.Time, dur time.Duration) {
	ce := x.cm.access.Check(zap.InfoLevel, "request")
	if ce == nil {
		return
	}
	routeName := ""
	if x.rt != nil {
		routeName = x.rt.Name
	}
	details := x.details
	if details == "" && x.upstreamTime > 0 {
		details = "via_upstream"
	}
	upstreamTime := zap.Skip()
	if x.upstreamTime > 0 {
		upstreamTime = zap.Duration("upstream_service_time", x.upstreamTime)
	}
	connID := x.ss.Connection().ID
	// The request as forwarded (the map after the filters and the router).
	h := x.ss.RequestHeaders()
	method, path, authority := string(mapGet(h, stream.Method)), string(mapGet(h, stream.Path)), string(mapGet(h, stream.Authority))
	xff, userAgent := string(mapGet(h, "x-forwarded-for")), string(mapGet(h, "user-agent"))
	remote := x.remoteAddr
	ce.Write(
		zap.Time("start_time", start),
		zap.String("method", method),
		zap.String("path", path),
		zap.String("protocol", x.ss.Connection().Protocol),
		zap.Int("response_code", x.status),
		zap.String("response_flags", responseFlags(x.details, x.retries)),
		zap.String("response_code_details", details),
		zap.Int64("bytes_received", x.received),
		zap.Int64("bytes_sent", x.sent),
		zap.Duration("duration", dur),
		upstreamTime,
		zap.String("x_forwarded_for", xff),
		zap.String("user_agent", userAgent),
		zap.String("request_id", x.requestID()),
		zap.String("authority", authority),
		zap.String("upstream_host", x.upstream),
		zap.String("upstream_cluster", x.cluster),
		zap.String("route_name", routeName),
		zap.String("downstream_remote_address", remote),
		zap.Uint64("connection_id", connID),
		zap.String("listener", x.cm.listener),
		x.meshIdentities(),
	)
}

// responseFlags are Envoy's short codes for why a request went the way it
// did, from the response details sluice records ("-" for none, as Envoy
// prints). URX joins a failure that retries did not cure.
func responseFlags(details string, retries int) string {
	var flags []string
	switch details {
	case "route_not_found", "no_backend":
		flags = append(flags, "NR")
	case "cluster_not_found":
		flags = append(flags, "NC")
	case "no_healthy_upstream":
		flags = append(flags, "UH")
	case "upstream_connect_failure":
		flags = append(flags, "UF")
	case "upstream_overflow":
		flags = append(flags, "UO")
	case "upstream_response_timeout":
		flags = append(flags, "UT")
	case "upstream_reset_before_response_started":
		flags = append(flags, "UC")
	case "upstream_reset_after_response_started":
		flags = append(flags, "UR")
	case "downstream_remote_disconnect", "downstream_read_error":
		flags = append(flags, "DC")
	case "stream_idle_timeout":
		flags = append(flags, "SI")
	case "request_payload_too_large", "response_payload_too_large", "retry_body_overflow":
		// Envoy answers these from its buffer filter without a flag.
	}
	if retries > 0 && len(flags) > 0 && flags[0] != "DC" {
		flags = append(flags, "URX")
	}
	if len(flags) == 0 {
		return "-"
	}
	return strings.Join(flags, ",")
}

func mapGet(h *stream.HeaderMap, name string) []byte {
	v, _ := h.Get(name)
	return v
}
