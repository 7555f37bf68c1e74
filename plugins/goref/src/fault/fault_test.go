package fault

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		name         string
		cfg          string
		headers      [][2]string
		dRoll, aRoll float64
		delay        time.Duration
		status       uint32
		grpc         int32
	}{
		{"nothing", `{}`, nil, 0, 0, 0, 0, -1},
		{"delay always", `{"delay":{"fixedDelay":"2s"}}`, nil, 99.9, 0, 2 * time.Second, 0, -1},
		{"delay 10% hit", `{"delay":{"fixedDelay":"5s","percentage":{"value":10}}}`, nil, 9.9, 0, 5 * time.Second, 0, -1},
		{"delay 10% miss", `{"delay":{"fixedDelay":"5s","percentage":{"value":10}}}`, nil, 10, 0, 0, 0, -1},
		{"abort http", `{"abort":{"httpStatus":503,"percentage":50}}`, nil, 0, 49, 0, 503, -1},
		{"abort miss", `{"abort":{"httpStatus":503,"percentage":50}}`, nil, 0, 51, 0, 0, -1},
		{"abort grpc", `{"abort":{"grpcStatus":"UNAVAILABLE"}}`, nil, 0, 0, 0, 200, 14},
		{"both", `{"delay":{"fixed_delay":"1s"},"abort":{"http_status":500}}`, nil, 0, 0, time.Second, 500, -1},
		{"header match", `{"abort":{"httpStatus":418},"headers":{"x-fault":{"exact":"yes"}}}`,
			[][2]string{{"x-fault", "yes"}}, 0, 0, 0, 418, -1},
		{"header mismatch", `{"abort":{"httpStatus":418},"headers":{"x-fault":{"exact":"yes"}}}`,
			[][2]string{{"x-fault", "no"}}, 0, 0, 0, 0, -1},
		{"match list", `{"abort":{"httpStatus":418},"match":[{"uri":{"prefix":"/a"}},{"uri":{"prefix":"/b"}}]}`,
			[][2]string{{":path", "/b/1"}}, 0, 0, 0, 418, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := Parse([]byte(tc.cfg))
			if err != nil {
				t.Fatal(err)
			}
			f := in.Decide(tc.headers, tc.dRoll, tc.aRoll)
			if f.Delay != tc.delay || f.Abort.Status != tc.status || f.GrpcStatus != tc.grpc {
				t.Errorf("fault = delay %v status %d grpc %d; want %v %d %d", f.Delay, f.Abort.Status, f.GrpcStatus, tc.delay, tc.status, tc.grpc)
			}
		})
	}
}

func TestParseErrorsAndTicks(t *testing.T) {
	for _, cfg := range []string{
		`{"delay":{"fixedDelay":"soon"}}`, `{"delay":{"fixedDelay":"-1s"}}`,
		`{"abort":{"httpStatus":42}}`, `{"abort":{"grpcStatus":"NOPE"}}`,
		`{"abort":{"httpStatus":503,"grpcStatus":"INTERNAL"}}`,
		`{"abort":{"httpStatus":503,"percentage":{"value":101}}}`,
		`{"abort":{"httpStatus":503,"percentage":{"val":1}}}`, `{"delays":{}}`,
	} {
		if _, err := Parse([]byte(cfg)); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
	for cfg, want := range map[string]time.Duration{
		`{"delay":{"fixedDelay":"10ms"}}`: 5 * time.Millisecond,
		`{"delay":{"fixedDelay":"1s"}}`:   50 * time.Millisecond,
		`{"delay":{"fixedDelay":"1m"}}`:   100 * time.Millisecond,
	} {
		in, _ := Parse([]byte(cfg))
		if got := in.TickPeriod(); got != want {
			t.Errorf("%s: tick period %v, want %v", cfg, got, want)
		}
	}
}
