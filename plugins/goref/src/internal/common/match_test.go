package common

import (
	"encoding/json"
	"testing"
)

func TestHeaderMatch(t *testing.T) {
	req := [][2]string{{":method", "GET"}, {":path", "/api/v2/orders?x=1"}, {"x-canary", "true"},
		{"cookie", "a=1; user=beta-7"}}
	tests := []struct {
		match string
		want  bool
	}{
		{`{}`, true},
		{`{"headers":{"x-canary":{"exact":"true"}}}`, true},
		{`{"headers":{"X-Canary":{"exact":"true"}}}`, true},
		{`{"headers":{"x-canary":{"exact":"TRUE"}}}`, false},
		{`{"headers":{"x-missing":{"prefix":""}}}`, false},
		{`{"cookies":{"user":{"prefix":"beta-"}}}`, true},
		{`{"cookies":{"user":{"regex":"beta-[0-9]"}}}`, true},
		{`{"cookies":{"user":{"regex":"beta"}}}`, false},
		{`{"uri":{"prefix":"/api/v2"},"method":{"exact":"GET"}}`, true},
		{`{"uri":{"exact":"/api/v2/orders"}}`, true},
		{`{"method":{"exact":"POST"}}`, false},
	}
	for _, tc := range tests {
		var m HeaderMatch
		if err := json.Unmarshal([]byte(tc.match), &m); err != nil {
			t.Fatal(err)
		}
		if err := m.Compile("match"); err != nil {
			t.Fatalf("%s: %v", tc.match, err)
		}
		if got := m.Match(req); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.match, got, tc.want)
		}
	}
	for _, bad := range []string{`{"headers":{"a":{}}}`, `{"headers":{"a":{"exact":"x","prefix":"y"}}}`, `{"uri":{"regex":"("}}`} {
		var m HeaderMatch
		json.Unmarshal([]byte(bad), &m)
		if err := m.Compile("match"); err == nil {
			t.Errorf("%s: Compile succeeded", bad)
		}
	}
}
