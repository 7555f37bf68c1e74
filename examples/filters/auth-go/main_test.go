package main

import (
	"reflect"
	"testing"
)

func TestParseConfig(t *testing.T) {
	got, err := parseConfig([]byte(`{"cluster":"auth","forward":["Authorization","X-Api-Key"]}`))
	want := config{Cluster: "auth", Path: "/check", TimeoutMs: 1000, Forward: []string{"authorization", "x-api-key"}, Copy: []string{"x-auth-user"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseConfig = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{``, `{}`, `{"cluster":"auth","path":"check"}`, `[1]`} {
		if _, err := parseConfig([]byte(bad)); err == nil {
			t.Errorf("parseConfig(%q) accepted", bad)
		}
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		status string
		want   bool
	}{{"200", true}, {"204", true}, {"299", true}, {"301", false}, {"401", false}, {"403", false}, {"500", false}, {"2", false}}
	for _, tc := range tests {
		if got := allowed([][2]string{{"x", "y"}, {":status", tc.status}}); got != tc.want {
			t.Errorf("allowed(%s) = %v, want %v", tc.status, got, tc.want)
		}
	}
	if allowed(nil) {
		t.Error("allowed with no :status")
	}
}
