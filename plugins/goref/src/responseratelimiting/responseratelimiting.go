// Package responseratelimiting is the response-ratelimiting plugin
// (Kong's): named limits that the upstream's responses consume, through a
// header such as "X-Sluice-Limit: sms=1" (or Kong's "X-Kong-Limit"). A
// request arriving when a limit is used up gets 429 before it reaches the
// upstream.
package responseratelimiting

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Name is the plugin's root_id.
const Name = "response-ratelimiting"

// DefaultHeaderNames are the response headers the upstream reports usage
// in when header_name is not set: sluice's own and Kong's, so an upstream
// written for Kong is counted as it was there (its header removed too).
var DefaultHeaderNames = []string{"x-sluice-limit", "x-kong-limit"}

// Periods of one named limit.
type Periods struct {
	Second *int64 `json:"second"`
	Minute *int64 `json:"minute"`
	Hour   *int64 `json:"hour"`
	Day    *int64 `json:"day"`
	Month  *int64 `json:"month"`
	Year   *int64 `json:"year"`
}

// Config is Kong's response-ratelimiting schema.
type Config struct {
	Limits map[string]Periods `json:"limits"`
	// HeaderName is the one usage header to read; unset reads both of
	// DefaultHeaderNames.
	HeaderName string `json:"header_name"`
	// LimitBy is consumer (default), credential or ip.
	LimitBy string `json:"limit_by"`
	// Policy is local (default) or redis; see rate-limiting.
	Policy            string `json:"policy"`
	FaultTolerant     *bool  `json:"fault_tolerant"`
	HideClientHeaders bool   `json:"hide_client_headers"`
	// BlockOnFirstViolation (sluice default true, Kong's false) answers 429
	// when any limit is used up. When false the request goes on, carrying
	// X-RateLimit-Remaining-<limit> so the upstream can decide.
	BlockOnFirstViolation *bool `json:"block_on_first_violation"`
	// Kong's Redis settings, accepted and left to the host's shared store.
	Redis         json.RawMessage `json:"redis"`
	RedisHost     string          `json:"redis_host"`
	RedisPort     int             `json:"redis_port"`
	RedisPassword string          `json:"redis_password"`
	RedisDatabase int             `json:"redis_database"`
	RedisTimeout  int             `json:"redis_timeout"`
}

type limit struct {
	name   string
	period common.Period
	max    int64
}

// Limiter is a validated configuration.
type Limiter struct {
	plugin string
	limits []limit // sorted by name, then period
	names  []string
	// HeaderNames are the usage headers read and removed from responses.
	HeaderNames   []string
	limitBy       string
	Policy        string
	faultTolerant bool
	hide          bool
	block         bool
}

// Parse validates a configuration; plugin scopes the counters.
func Parse(data []byte, plugin string) (*Limiter, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	l := &Limiter{plugin: plugin, limitBy: c.LimitBy, Policy: c.Policy,
		faultTolerant: c.FaultTolerant == nil || *c.FaultTolerant, hide: c.HideClientHeaders,
		block: c.BlockOnFirstViolation == nil || *c.BlockOnFirstViolation}
	l.HeaderNames = DefaultHeaderNames
	if c.HeaderName != "" {
		l.HeaderNames = []string{strings.ToLower(c.HeaderName)}
	}
	for name := range c.Limits {
		l.names = append(l.names, name)
	}
	sort.Strings(l.names)
	for _, name := range l.names {
		if name == "" || strings.ContainsAny(name, "=,; /") {
			return nil, fmt.Errorf("config: limits: %q is not a usable limit name", name)
		}
		p := c.Limits[name]
		n := 0
		for i, v := range []*int64{p.Second, p.Minute, p.Hour, p.Day, p.Month, p.Year} {
			if v == nil {
				continue
			}
			if *v <= 0 {
				return nil, fmt.Errorf("config: limits.%s.%s: must be positive", name, common.Periods[i].Name)
			}
			l.limits = append(l.limits, limit{name, common.Periods[i], *v})
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("config: limits.%s: set at least one of second, minute, hour, day, month, year", name)
		}
	}
	if len(l.limits) == 0 {
		return nil, fmt.Errorf("config: limits: name at least one limit, e.g. limits = { sms = { minute = 10 } }")
	}
	switch l.limitBy {
	case "":
		l.limitBy = "consumer"
	case "consumer", "credential", "ip":
	default:
		return nil, fmt.Errorf("config: limit_by: %q is not consumer, credential or ip", l.limitBy)
	}
	switch l.Policy {
	case "":
		l.Policy = "local"
	case "local", "redis":
	default:
		return nil, fmt.Errorf("config: policy: %q is not local or redis", l.Policy)
	}
	return l, nil
}

// Identifier is whom the limits count, falling back to the client IP.
// consumer is the one an auth plugin set (the sluice.consumer property).
func (l *Limiter) Identifier(consumer, clientIP string) string {
	id := ""
	if l.limitBy != "ip" {
		id = consumer
	}
	if id == "" {
		id = clientIP
	}
	return id
}

func (l *Limiter) key(lim limit, id string) string {
	return "sluice/response-ratelimiting/" + l.Policy + "/" + l.plugin + "/" + lim.name + "/" + lim.period.Name + "/" + id
}

// RequestDecision is the outcome of the request phase.
type RequestDecision struct {
	Reply common.Reply
	// UpstreamHeaders carry X-RateLimit-Remaining-<limit> to the upstream.
	UpstreamHeaders [][2]string
	StoreError      error
}

// OnRequest checks the limits before the request goes upstream.
func (l *Limiter) OnRequest(s common.Store, id string, now time.Time) RequestDecision {
	var d RequestDecision
	remaining := map[string]int64{}
	for _, lim := range l.limits {
		start, _, _ := common.Window(lim.period.Name, now)
		n, err := common.Usage(s, l.key(lim, id), start)
		if err != nil {
			d.StoreError = err
			if !l.faultTolerant {
				d.Reply = common.JSONReply(500, "An unexpected error occurred")
			}
			return d
		}
		r := lim.max - n
		if r < 0 {
			r = 0
		}
		if old, ok := remaining[lim.name]; !ok || r < old {
			remaining[lim.name] = r
		}
	}
	for _, name := range l.names {
		r := remaining[name]
		if r == 0 && l.block {
			d.Reply = common.JSONReply(429, "API rate limit exceeded for '"+name+"'")
			return d
		}
		d.UpstreamHeaders = append(d.UpstreamHeaders, [2]string{"x-ratelimit-remaining-" + name, strconv.FormatInt(r, 10)})
	}
	return d
}

// ParseUsage reads the upstream's usage header ("sms=1, email=2"); unknown
// names and malformed items are skipped.
func (l *Limiter) ParseUsage(v string) map[string]int64 {
	out := map[string]int64{}
	for _, item := range strings.Split(v, ",") {
		k, n, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			continue
		}
		c, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		if err != nil || c <= 0 {
			continue
		}
		k = strings.TrimSpace(k)
		for _, name := range l.names {
			if name == k {
				out[k] += c
			}
		}
	}
	return out
}

// OnResponse counts the usage the upstream reported and returns the
// headers for the client (none with hide_client_headers).
func (l *Limiter) OnResponse(s common.Store, id string, usage map[string]int64, now time.Time) ([][2]string, error) {
	var h [][2]string
	var firstErr error
	for _, lim := range l.limits {
		start, _, _ := common.Window(lim.period.Name, now)
		var n int64
		var err error
		if by := usage[lim.name]; by > 0 {
			n, _, err = common.Increment(s, l.key(lim, id), start, by, 0)
		} else {
			n, err = common.Usage(s, l.key(lim, id), start)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		rem := lim.max - n
		if rem < 0 {
			rem = 0
		}
		if !l.hide {
			// Lower case, as header maps carry them (HTTP/2 requires it);
			// HTTP/1 clients see them as the proxy writes them.
			suffix := "-" + strings.ToLower(lim.name) + "-" + lim.period.Name
			h = append(h,
				[2]string{"x-ratelimit-limit" + suffix, strconv.FormatInt(lim.max, 10)},
				[2]string{"x-ratelimit-remaining" + suffix, strconv.FormatInt(rem, 10)})
		}
	}
	return h, firstErr
}
