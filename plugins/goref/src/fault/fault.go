// Package fault is the fault plugin (Istio's HTTPFaultInjection): delay
// and/or abort a percentage of requests, optionally only those matching
// headers.
package fault

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

// Name is the plugin's root_id.
const Name = "fault"

// Percentage is Istio's {value = N} or a bare number, 0..100.
type Percentage float64

func (p *Percentage) UnmarshalJSON(b []byte) error {
	var v struct {
		Value float64 `json:"value"`
	}
	if err := json.Unmarshal(b, &v.Value); err == nil {
		*p = Percentage(v.Value)
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("percentage: want a number or {value = N}: %w", err)
	}
	*p = Percentage(v.Value)
	return nil
}

// Delay is Istio's HTTPFaultInjection.Delay.
type Delay struct {
	FixedDelay  string      `json:"fixedDelay"`
	FixedDelay2 string      `json:"fixed_delay"`
	Percentage  *Percentage `json:"percentage"`
}

// Abort is Istio's HTTPFaultInjection.Abort.
type Abort struct {
	HTTPStatus  uint32      `json:"httpStatus"`
	HTTPStatus2 uint32      `json:"http_status"`
	GrpcStatus  string      `json:"grpcStatus"`
	GrpcStatus2 string      `json:"grpc_status"`
	Percentage  *Percentage `json:"percentage"`
}

// Config is the plugin's configuration.
type Config struct {
	Delay *Delay `json:"delay"`
	Abort *Abort `json:"abort"`
	// Match, when set, limits faults to requests that match one entry.
	Match []common.HeaderMatch `json:"match"`
	// Headers is shorthand for one match entry with these headers.
	Headers map[string]*common.StringMatch `json:"headers"`
}

// Injector is a validated configuration.
type Injector struct {
	delay        time.Duration
	delayPercent float64
	abortHTTP    uint32
	abortGrpc    int32 // -1: not gRPC
	abortPercent float64
	match        []common.HeaderMatch
}

var grpcCodes = map[string]int32{
	"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
	"NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
	"FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
	"INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

func percent(p *Percentage, where string) (float64, error) {
	if p == nil {
		return 100, nil // Istio: unset percentage means every request
	}
	if *p < 0 || *p > 100 {
		return 0, fmt.Errorf("config: %s.percentage: %v is not within 0..100", where, float64(*p))
	}
	return float64(*p), nil
}

// Parse validates a configuration.
func Parse(data []byte) (*Injector, error) {
	var c Config
	if err := common.DecodeConfig(data, &c); err != nil {
		return nil, err
	}
	in := &Injector{abortGrpc: -1, match: c.Match}
	var err error
	if d := c.Delay; d != nil {
		s := d.FixedDelay
		if s == "" {
			s = d.FixedDelay2
		}
		if in.delay, err = time.ParseDuration(s); err != nil || in.delay <= 0 {
			return nil, fmt.Errorf("config: delay.fixedDelay: %q is not a positive duration such as \"5s\"", s)
		}
		if in.delayPercent, err = percent(d.Percentage, "delay"); err != nil {
			return nil, err
		}
	}
	if a := c.Abort; a != nil {
		in.abortHTTP = a.HTTPStatus
		if in.abortHTTP == 0 {
			in.abortHTTP = a.HTTPStatus2
		}
		g := a.GrpcStatus
		if g == "" {
			g = a.GrpcStatus2
		}
		switch {
		case g != "" && in.abortHTTP != 0:
			return nil, fmt.Errorf("config: abort: set one of httpStatus, grpcStatus")
		case g != "":
			code, ok := grpcCodes[strings.ToUpper(g)]
			if !ok {
				return nil, fmt.Errorf("config: abort.grpcStatus: %q is not a gRPC status name such as UNAVAILABLE", g)
			}
			in.abortGrpc = code
			in.abortHTTP = 200
		case in.abortHTTP < 200 || in.abortHTTP > 599:
			return nil, fmt.Errorf("config: abort.httpStatus: %d is not an HTTP status from 200 to 599", in.abortHTTP)
		}
		if in.abortPercent, err = percent(a.Percentage, "abort"); err != nil {
			return nil, err
		}
	}
	if len(c.Headers) > 0 {
		in.match = append(in.match, common.HeaderMatch{Headers: c.Headers})
	}
	for i := range in.match {
		if err := in.match[i].Compile(fmt.Sprintf("config: match[%d]", i)); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Fault is what to do to one request.
type Fault struct {
	Delay time.Duration
	// Abort, when Status != 0, answers the request (after Delay).
	Abort common.Reply
	// GrpcStatus is the gRPC status of the abort, -1 when not gRPC.
	GrpcStatus int32
}

// Decide picks the faults for a request. delayRoll and abortRoll are
// uniform random numbers in [0, 100).
func (in *Injector) Decide(headers [][2]string, delayRoll, abortRoll float64) Fault {
	f := Fault{GrpcStatus: -1}
	if len(in.match) > 0 {
		matched := false
		for i := range in.match {
			if in.match[i].Match(headers) {
				matched = true
				break
			}
		}
		if !matched {
			return f
		}
	}
	if in.delay > 0 && delayRoll < in.delayPercent {
		f.Delay = in.delay
	}
	if in.abortHTTP != 0 && abortRoll < in.abortPercent {
		f.GrpcStatus = in.abortGrpc
		if in.abortGrpc >= 0 {
			f.Abort = common.Reply{Status: 200, Headers: [][2]string{{"content-type", "application/grpc"}}}
		} else {
			f.Abort = common.Reply{Status: in.abortHTTP, Headers: [][2]string{{"content-type", "text/plain"}},
				Body: []byte("fault filter abort")}
		}
	}
	return f
}

// HasDelay says whether the plugin can delay at all (so it needs ticks).
func (in *Injector) HasDelay() bool { return in.delay > 0 }

// TickPeriod is how often pending delays are checked: a twentieth of the
// delay, between 5 ms and 100 ms.
func (in *Injector) TickPeriod() time.Duration {
	p := in.delay / 20
	if p < 5*time.Millisecond {
		p = 5 * time.Millisecond
	}
	if p > 100*time.Millisecond {
		p = 100 * time.Millisecond
	}
	return p
}
