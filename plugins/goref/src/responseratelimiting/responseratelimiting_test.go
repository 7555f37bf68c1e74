package responseratelimiting

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

func TestSMSLimit(t *testing.T) {
	l, err := Parse([]byte(`{"limits":{"sms":{"minute":10},"email":{"second":100,"hour":1000}}}`), "rrl")
	if err != nil {
		t.Fatal(err)
	}
	s := common.NewMemStore()
	now := time.Unix(1_700_000_000, 0)
	id := l.Identifier("alice", "10.0.0.1")
	if id != "alice" {
		t.Fatalf("identifier = %q", id)
	}
	for i := 0; i < 5; i++ {
		d := l.OnRequest(s, id, now)
		if d.Reply.Status != 0 {
			t.Fatalf("request %d blocked: %s", i, d.Reply.Body)
		}
		h, err := l.OnResponse(s, id, l.ParseUsage("sms=2"), now)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := common.Header(h, "X-RateLimit-Remaining-Sms-Minute"); v != itoa(8-2*i) {
			t.Errorf("response %d: remaining = %q, want %d (headers %q)", i, v, 8-2*i, h)
		}
	}
	d := l.OnRequest(s, id, now)
	if d.Reply.Status != 429 || !strings.Contains(string(d.Reply.Body), "'sms'") {
		t.Fatalf("after 10 sms: %d %s, want 429", d.Reply.Status, d.Reply.Body)
	}
	if d := l.OnRequest(s, "bob", now); d.Reply.Status != 0 {
		t.Error("another consumer blocked")
	}
	if d := l.OnRequest(s, id, now.Add(time.Minute)); d.Reply.Status != 0 {
		t.Error("still blocked in the next minute")
	} else if v, _ := common.Header(d.UpstreamHeaders, "x-ratelimit-remaining-sms"); v != "10" {
		t.Errorf("upstream remaining = %q, want 10", v)
	}
}

func TestNoBlock(t *testing.T) {
	l, _ := Parse([]byte(`{"limits":{"sms":{"minute":1}},"block_on_first_violation":false}`), "rrl")
	s := common.NewMemStore()
	now := time.Unix(0, 0)
	l.OnResponse(s, "a", map[string]int64{"sms": 5}, now)
	d := l.OnRequest(s, "a", now)
	if d.Reply.Status != 0 {
		t.Fatal("blocked although block_on_first_violation is false")
	}
	if v, _ := common.Header(d.UpstreamHeaders, "x-ratelimit-remaining-sms"); v != "0" {
		t.Errorf("upstream remaining = %q, want 0", v)
	}
}

func TestParseUsage(t *testing.T) {
	l, _ := Parse([]byte(`{"limits":{"sms":{"minute":1},"email":{"minute":1}}}`), "rrl")
	got := l.ParseUsage(" sms=2, email = 3, video=1, bad, sms=x, sms=-4, sms=1")
	if want := map[string]int64{"sms": 3, "email": 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("usage = %v, want %v", got, want)
	}
}

func TestStoreFailureAndErrors(t *testing.T) {
	l, _ := Parse([]byte(`{"limits":{"sms":{"minute":1}},"fault_tolerant":false}`), "rrl")
	s := common.NewMemStore()
	s.Fail = errors.New("down")
	if d := l.OnRequest(s, "a", time.Unix(0, 0)); d.Reply.Status != 500 || d.StoreError == nil {
		t.Errorf("not fault tolerant: %d %v", d.Reply.Status, d.StoreError)
	}
	for _, cfg := range []string{`{"limits":{"sms":{}}}`, `{"limits":{"sms":{"minute":0}}}`, `{"limits":{"a=b":{"minute":1}}}`,
		`{"limits":{"sms":{"minute":1}},"limit_by":"path"}`, `{"limits":{"sms":{"minute":1}},"policy":"cluster"}`, `{"limit":{}}`, `{}`, ``} {
		if _, err := Parse([]byte(cfg), "rrl"); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
}

func itoa(n int) string {
	if n < 0 {
		return "0"
	}
	return string([]byte{byte('0' + n/10%10), byte('0' + n%10)})[map[bool]int{true: 1, false: 0}[n < 10]:]
}
