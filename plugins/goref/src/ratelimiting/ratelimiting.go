// Package ratelimiting is the rate-limiting plugin (Kong's rate-limiting):
// requests counted per consumer, IP, header or path in second..year
// windows, in the host's shared data so every instance of the process (or,
// with a Redis-backed store, every replica) sees one count.
package ratelimiting

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Name is the plugin's root_id.
const Name = "rate-limiting"

// Config is Kong's rate-limiting schema.
type Config struct {
	Second *int64 `json:"second"`
	Minute *int64 `json:"minute"`
	Hour   *int64 `json:"hour"`
	Day    *int64 `json:"day"`
	Month  *int64 `json:"month"`
	Year   *int64 `json:"year"`
	// LimitBy is consumer (default), credential, ip, service, header or path.
	LimitBy    string `json:"limit_by"`
	HeaderName string `json:"header_name"`
	Path       string `json:"path"`
	// Policy is local (default) or redis. Both use the host's shared data;
	// which store backs it is the host's configuration. cluster (Kong's
	// database policy) is refused.
	Policy string `json:"policy"`
	// FaultTolerant (default true) lets requests through when the store fails.
	FaultTolerant     *bool  `json:"fault_tolerant"`
	HideClientHeaders bool   `json:"hide_client_headers"`
	ErrorCode         uint32 `json:"error_code"`
	ErrorMessage      string `json:"error_message"`
	// Kong's Redis settings, accepted so configurations move across; the
	// host's shared store holds the Redis address.
	Redis         json.RawMessage `json:"redis"`
	RedisHost     string          `json:"redis_host"`
	RedisPort     int             `json:"redis_port"`
	RedisPassword string          `json:"redis_password"`
	RedisUsername string          `json:"redis_username"`
	RedisDatabase int             `json:"redis_database"`
	RedisTimeout  int             `json:"redis_timeout"`
	RedisSSL      bool            `json:"redis_ssl"`
	SyncRate      float64         `json:"sync_rate"`
}

type limit struct {
	period common.Period
	max    int64
}

// Limiter is a validated configuration.
type Limiter struct {
	plugin        string
	limits        []limit
	limitBy       string
	headerName    string
	path          string
	Policy        string
	faultTolerant bool
	hideHeaders   bool
	errorCode     uint32
	errorMessage  string
}

// Parse validates a configuration; plugin scopes the counters.
func Parse(data []byte, plugin string) (*Limiter, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	l := &Limiter{plugin: plugin, limitBy: c.LimitBy, headerName: c.HeaderName, path: c.Path,
		Policy: c.Policy, faultTolerant: c.FaultTolerant == nil || *c.FaultTolerant,
		hideHeaders: c.HideClientHeaders, errorCode: c.ErrorCode, errorMessage: c.ErrorMessage}
	for i, v := range []*int64{c.Second, c.Minute, c.Hour, c.Day, c.Month, c.Year} {
		if v == nil {
			continue
		}
		if *v <= 0 {
			return nil, fmt.Errorf("config: %s: must be a positive number of requests", common.Periods[i].Name)
		}
		l.limits = append(l.limits, limit{common.Periods[i], *v})
	}
	if len(l.limits) == 0 {
		// As Kong: a rate limiter without a limit is a mistake, not a no-op.
		return nil, fmt.Errorf("config: set at least one of second, minute, hour, day, month, year")
	}
	switch l.limitBy {
	case "":
		l.limitBy = "consumer"
	case "consumer", "credential", "ip", "service":
	case "header":
		if l.headerName == "" {
			return nil, fmt.Errorf("config: limit_by = \"header\" needs header_name")
		}
	case "path":
		if l.path == "" {
			return nil, fmt.Errorf("config: limit_by = \"path\" needs path")
		}
	default:
		return nil, fmt.Errorf("config: limit_by: %q is not one of consumer, credential, ip, service, header, path", l.limitBy)
	}
	switch l.Policy {
	case "":
		l.Policy = "local"
	case "local", "redis":
	default:
		return nil, fmt.Errorf("config: policy: %q is not local or redis", l.Policy)
	}
	if l.errorCode == 0 {
		l.errorCode = 429
	}
	if l.errorMessage == "" {
		l.errorMessage = "API rate limit exceeded"
	}
	return l, nil
}

// Request is what Identifier may ask about a request; each answer costs a
// hostcall, so only what limit_by needs is asked.
type Request interface {
	Header(name string) (string, bool)
	// Consumer is the one an auth plugin set (the sluice.consumer
	// property), never a header a client could send.
	Consumer() string
	ClientIP() string
}

// Identifier picks what requests are counted by, falling back to the
// client IP as Kong does.
func (l *Limiter) Identifier(r Request) string {
	var id string
	switch l.limitBy {
	case "consumer", "credential":
		id = r.Consumer()
	case "service":
		id = "service"
	case "header":
		id, _ = r.Header(l.headerName)
	case "path":
		p, _ := r.Header(":path")
		if p, _ = common.SplitPath(p); p == l.path {
			id = p
		}
	}
	if id == "" {
		id = r.ClientIP()
	}
	return l.limitBy + ":" + id
}

// Decision is the outcome for one request.
type Decision struct {
	// Reply, when Status != 0, rejects the request.
	Reply common.Reply
	// Headers go on the response (empty with hide_client_headers).
	Headers [][2]string
	// StoreError is set when the store failed (and the request was let
	// through because of fault_tolerant, unless Reply says otherwise).
	StoreError error
}

func (l *Limiter) key(period, id string) string {
	return "sluice/rate-limiting/" + l.Policy + "/" + l.plugin + "/" + period + "/" + id
}

// Decide counts the request against every limit.
func (l *Limiter) Decide(s common.Store, id string, now time.Time) Decision {
	if len(l.limits) == 0 {
		return Decision{}
	}
	type usage struct {
		limit
		count, reset int64
	}
	usages := make([]usage, len(l.limits))
	exceeded := -1
	for i, lim := range l.limits {
		_, end, _ := common.Window(lim.period.Name, now)
		usages[i] = usage{limit: lim, reset: common.ResetSeconds(end, now)}
	}
	// With several periods, read them all first so that a request refused
	// by one does not use up the others. With one, Increment alone checks.
	for i := 0; len(usages) > 1 && i < len(usages); i++ {
		start, _, _ := common.Window(usages[i].period.Name, now)
		n, err := common.Usage(s, l.key(usages[i].period.Name, id), start)
		if err != nil {
			return l.storeFailed(err)
		}
		usages[i].count = n
		if n >= usages[i].max && exceeded < 0 {
			exceeded = i
		}
	}
	if exceeded < 0 {
		for i := range usages {
			start, _, _ := common.Window(usages[i].period.Name, now)
			n, ok, err := common.Increment(s, l.key(usages[i].period.Name, id), start, 1, usages[i].max)
			if err != nil {
				return l.storeFailed(err)
			}
			usages[i].count = n
			if !ok && exceeded < 0 {
				// Lost a race to the last slot: over the limit after all.
				exceeded = i
			}
		}
	}
	var d Decision
	if !l.hideHeaders {
		// RateLimit-* describe the most constrained limit (the lowest
		// remaining; on a tie, the larger limit), as Kong does. Names are
		// lower case, as header maps carry them (HTTP/2 requires it).
		best := -1
		var bestRemaining int64
		for i, u := range usages {
			rem := u.max - u.count
			if rem < 0 {
				rem = 0
			}
			d.Headers = append(d.Headers,
				[2]string{"x-ratelimit-limit-" + u.period.Name, strconv.FormatInt(u.max, 10)},
				[2]string{"x-ratelimit-remaining-" + u.period.Name, strconv.FormatInt(rem, 10)})
			if best < 0 || rem < bestRemaining || (rem == bestRemaining && u.max > usages[best].max) {
				best, bestRemaining = i, rem
			}
		}
		d.Headers = append(d.Headers,
			[2]string{"ratelimit-limit", strconv.FormatInt(usages[best].max, 10)},
			[2]string{"ratelimit-remaining", strconv.FormatInt(bestRemaining, 10)},
			[2]string{"ratelimit-reset", strconv.FormatInt(usages[best].reset, 10)})
	}
	if exceeded >= 0 {
		retry := strconv.FormatInt(usages[exceeded].reset, 10)
		d.Reply = common.JSONReply(l.errorCode, l.errorMessage, append(d.Headers, [2]string{"retry-after", retry})...)
	}
	return d
}

func (l *Limiter) storeFailed(err error) Decision {
	if l.faultTolerant {
		return Decision{StoreError: err}
	}
	return Decision{StoreError: err, Reply: common.JSONReply(500, "An unexpected error occurred")}
}
