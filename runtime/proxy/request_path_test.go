package proxy

import (
	"net"
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

// addrString prints what net.TCPAddr.String prints.
func TestAddrString(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080},
		&net.TCPAddr{IP: net.ParseIP("10.1.2.3").To4(), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("::1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::ffff:1.2.3.4"), Port: 9},
		&net.UnixAddr{Name: "/tmp/s", Net: "unix"},
	} {
		if got, want := addrString(a), a.String(); got != want {
			t.Errorf("addrString(%#v) = %q, want %q", a, got, want)
		}
	}
}
