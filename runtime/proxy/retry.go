package proxy

import (
	"math/rand/v2"
	"time"

	"github.com/sluice-proxy/sluice/runtime/config"
	"github.com/sluice-proxy/sluice/runtime/upstream"
)

// retryOn is a set of Istio retry conditions.
type retryOn uint8

const (
	retry5xx retryOn = 1 << iota
	retryGatewayError
	retryReset
	retryConnectFailure
	retryRefusedStream
	retryRetriableStatusCodes
)

var retryOnNames = map[string]retryOn{
	"5xx":                    retry5xx,
	"gateway-error":          retryGatewayError,
	"reset":                  retryReset,
	"connect-failure":        retryConnectFailure,
	"refused-stream":         retryRefusedStream,
	"retriable-status-codes": retryRetriableStatusCodes,
}

// retryPolicy is a route's retry config compiled once per snapshot.
type retryPolicy struct {
	attempts      int
	perTryTimeout time.Duration
	on            retryOn
	statusCodes   []int
	backoffBase   time.Duration
	backoffMax    time.Duration
}

func compileRetry(r *config.Retry) retryPolicy {
	if r == nil {
		r = config.DefaultRetry()
	}
	p := retryPolicy{
		attempts:      r.Attempts,
		perTryTimeout: r.PerTryTimeout.D(),
		statusCodes:   r.RetriableStatusCodes,
		backoffBase:   r.BackoffBase.D(),
		backoffMax:    r.BackoffMax.D(),
	}
	for _, name := range r.On {
		p.on |= retryOnNames[name]
	}
	if p.backoffBase <= 0 {
		p.backoffBase = 25 * time.Millisecond
	}
	if p.backoffMax <= 0 {
		p.backoffMax = 10 * p.backoffBase
	}
	return p
}

// retriableStatus reports whether an upstream response status is worth
// another try under this policy.
func (p *retryPolicy) retriableStatus(code int) bool {
	if p.on&retry5xx != 0 && code >= 500 {
		return true
	}
	if p.on&retryGatewayError != 0 && (code == 502 || code == 503 || code == 504) {
		return true
	}
	if p.on&retryRetriableStatusCodes != 0 {
		for _, c := range p.statusCodes {
			if c == code {
				return true
			}
		}
	}
	return false
}

// retriableFailure reports whether a failed try (no response) is worth
// another. Istio's "5xx" includes every failure to get a response.
func (p *retryPolicy) retriableFailure(f upstream.Failure) bool {
	switch f {
	case upstream.ConnectFailure:
		return p.on&(retry5xx|retryGatewayError|retryConnectFailure) != 0
	case upstream.Reset:
		return p.on&(retry5xx|retryReset) != 0
	case upstream.RefusedStream:
		return p.on&(retry5xx|retryRefusedStream) != 0
	case upstream.Timeout:
		// A per-try timeout, as Envoy counts it under 5xx and gateway-error.
		return p.on&(retry5xx|retryGatewayError) != 0
	}
	return false
}

// backoff is Envoy's: full jitter over an exponentially growing window.
func (p *retryPolicy) backoff(retry int) time.Duration {
	window := p.backoffBase << uint(min(retry, 16))
	if window > p.backoffMax || window <= 0 {
		window = p.backoffMax
	}
	return time.Duration(rand.Int64N(int64(window) + 1))
}
