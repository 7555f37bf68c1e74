package proxy

import (
	"net/url"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// validRequestTarget's allocation-free check agrees with
// url.ParseRequestURI, which the request view used to decide a 400.
func TestValidRequestTarget(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           bool
	}{
		{"GET", "/a/b?x=1", true},
		{"GET", "//a", true},
		{"GET", "/a%2Fb", true},
		{"GET", "/a%zz", false},
		{"GET", "/a\x7fb", false},
		{"GET", "/a\tb", false},
		{"OPTIONS", "*", true},
		{"GET", "a/b", false},
		{"GET", "", false},
		{"", "/", false},
		{"CONNECT", "example.com:443", true},
		{"GET", "example.com:443", true}, // absolute form with a scheme, as url.ParseRequestURI takes it
	} {
		h := &stream.HeaderMap{}
		if tc.method != "" {
			h.Set(stream.Method, tc.method)
		}
		h.Set(stream.Path, tc.target)
		if got := validRequestTarget(h); got != tc.want {
			t.Errorf("%s %q: valid = %v, want %v", tc.method, tc.target, got, tc.want)
		}
		if tc.method != "" && tc.method != "CONNECT" {
			_, err := url.ParseRequestURI(tc.target)
			if (err == nil) != tc.want {
				t.Errorf("%q: url.ParseRequestURI disagrees (err %v)", tc.target, err)
			}
		}
	}
	h := &stream.HeaderMap{}
	h.Set(stream.Method, "GET")
	h.Set(stream.Path, "/api/v1/orders?x=1")
	if n := testing.AllocsPerRun(100, func() { validRequestTarget(h) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}
