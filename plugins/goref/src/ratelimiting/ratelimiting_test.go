package ratelimiting

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

func header(h [][2]string, k string) string {
	v, _ := common.Header(h, k)
	return v
}

func TestDecideMinuteLimit(t *testing.T) {
	l, err := Parse([]byte(`{"minute":3,"policy":"redis"}`), "rl")
	if err != nil {
		t.Fatal(err)
	}
	s := common.NewMemStore()
	now := time.Unix(1_700_000_010, 0) // 10 s into a minute... of some minute
	_, end, _ := common.Window("minute", now)
	wantReset := end - now.Unix()
	for i := 1; i <= 3; i++ {
		d := l.Decide(s, "ip:1.2.3.4", now)
		if d.Reply.Status != 0 {
			t.Fatalf("request %d rejected", i)
		}
		if got, want := header(d.Headers, "X-RateLimit-Remaining-Minute"), string(rune('0'+3-i)); got != want {
			t.Errorf("request %d: remaining = %q, want %q", i, got, want)
		}
		if header(d.Headers, "RateLimit-Limit") != "3" || header(d.Headers, "X-RateLimit-Limit-Minute") != "3" {
			t.Errorf("limit headers = %q", d.Headers)
		}
	}
	d := l.Decide(s, "ip:1.2.3.4", now)
	if d.Reply.Status != 429 || !strings.Contains(string(d.Reply.Body), `"API rate limit exceeded"`) {
		t.Fatalf("4th request: %d %s, want 429", d.Reply.Status, d.Reply.Body)
	}
	if ra := header(d.Reply.Headers, "Retry-After"); ra != itoa(wantReset) {
		t.Errorf("Retry-After = %q, want %d", ra, wantReset)
	}
	if header(d.Reply.Headers, "RateLimit-Remaining") != "0" {
		t.Errorf("429 headers = %q", d.Reply.Headers)
	}
	// Another client has its own count.
	if d := l.Decide(s, "ip:5.6.7.8", now); d.Reply.Status != 0 {
		t.Error("a different identifier was limited")
	}
	// The next minute starts afresh.
	if d := l.Decide(s, "ip:1.2.3.4", now.Add(time.Minute)); d.Reply.Status != 0 {
		t.Error("still limited in the next window")
	}
	if !strings.Contains(l.key("minute", "x"), "/redis/") {
		t.Errorf("key %q does not record the policy", l.key("minute", "x"))
	}
}

func TestDecideSeveralPeriods(t *testing.T) {
	l, _ := Parse([]byte(`{"second":2,"hour":3}`), "rl")
	s := common.NewMemStore()
	now := time.Unix(1_700_000_000, 0)
	l.Decide(s, "a", now)
	d := l.Decide(s, "a", now)
	// second: 0 left of 2, hour: 1 left of 3 -> RateLimit-* show the second.
	if header(d.Headers, "RateLimit-Limit") != "2" || header(d.Headers, "RateLimit-Remaining") != "0" {
		t.Errorf("headers = %q", d.Headers)
	}
	if d := l.Decide(s, "a", now); d.Reply.Status != 429 {
		t.Fatal("third request in one second was let through")
	}
	// A rejected request must not use up the hour.
	if d := l.Decide(s, "a", now.Add(time.Second)); d.Reply.Status != 0 || header(d.Headers, "X-RateLimit-Remaining-Hour") != "0" {
		t.Errorf("next second: status %d headers %q", d.Reply.Status, d.Headers)
	}
	if d := l.Decide(s, "a", now.Add(2*time.Second)); d.Reply.Status != 429 {
		t.Error("hour limit not enforced")
	}
}

func TestDecideHideHeadersAndStoreFailure(t *testing.T) {
	tests := []struct {
		cfg        string
		wantStatus uint32
	}{
		{`{"minute":5}`, 0},
		{`{"minute":5,"fault_tolerant":false}`, 500},
	}
	for _, tc := range tests {
		l, _ := Parse([]byte(tc.cfg), "rl")
		s := common.NewMemStore()
		s.Fail = errors.New("connection refused")
		d := l.Decide(s, "a", time.Unix(0, 0))
		if d.Reply.Status != tc.wantStatus || d.StoreError == nil {
			t.Errorf("%s: status %d err %v, want %d and an error", tc.cfg, d.Reply.Status, d.StoreError, tc.wantStatus)
		}
	}
	l, _ := Parse([]byte(`{"minute":1,"hide_client_headers":true}`), "rl")
	s := common.NewMemStore()
	if d := l.Decide(s, "a", time.Unix(0, 0)); len(d.Headers) != 0 {
		t.Errorf("hidden headers sent: %q", d.Headers)
	}
}

func TestIdentifier(t *testing.T) {
	hs := [][2]string{{":path", "/api/x?y=1"}, {"x-consumer-username", "mallory"}, {"x-user", "u7"}}
	tests := []struct {
		cfg, want string
	}{
		{`{"minute":1}`, "consumer:alice"},
		{`{"minute":1,"limit_by":"ip"}`, "ip:10.0.0.9"},
		{`{"minute":1,"limit_by":"header","header_name":"X-User"}`, "header:u7"},
		{`{"minute":1,"limit_by":"header","header_name":"x-none"}`, "header:10.0.0.9"},
		{`{"minute":1,"limit_by":"path","path":"/api/x"}`, "path:/api/x"},
		{`{"minute":1,"limit_by":"path","path":"/other"}`, "path:10.0.0.9"},
		{`{"minute":1,"limit_by":"service"}`, "service:service"},
	}
	for _, tc := range tests {
		l, err := Parse([]byte(tc.cfg), "rl")
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Identifier(common.HeaderRequest{Headers: hs, ConsumerName: "alice", IP: "10.0.0.9"}); got != tc.want {
			t.Errorf("%s: identifier = %q, want %q", tc.cfg, got, tc.want)
		}
	}
	l, _ := Parse([]byte(`{"minute":1}`), "rl")
	if got := l.Identifier(common.HeaderRequest{Headers: hs, IP: "10.0.0.9"}); got != "consumer:10.0.0.9" {
		t.Errorf("no consumer: identifier = %q, want the IP (not the client's header)", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, cfg := range []string{
		`{"minute":0}`, `{"limit_by":"header","minute":1}`, `{"limit_by":"path","minute":1}`,
		`{"limit_by":"planet","minute":1}`, `{"policy":"cluster","minute":1}`, `{"minutes":1}`, `{"policy":"local"}`, `{}`, ``,
	} {
		if _, err := Parse([]byte(cfg), "rl"); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
	if _, err := Parse([]byte(`{"minute":100,"policy":"redis","redis":{"host":"127.0.0.1","port":6379},"redis_timeout":2000}`), "rl"); err != nil {
		t.Errorf("Kong redis settings refused: %v", err)
	}
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
