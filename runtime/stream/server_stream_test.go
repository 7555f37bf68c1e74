package stream

import (
	"net"
	"testing"
)

// AddrString prints what the address's String prints.
func TestAddrString(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080},
		&net.TCPAddr{IP: net.ParseIP("10.1.2.3").To4(), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("::1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::ffff:1.2.3.4"), Port: 9},
		&net.UnixAddr{Name: "/tmp/s", Net: "unix"},
	} {
		if got, want := AddrString(a), a.String(); got != want {
			t.Errorf("AddrString(%#v) = %q, want %q", a, got, want)
		}
	}
}

// FormatAddresses fills the text forms a handler reads instead of
// formatting the addresses per stream.
func TestFormatAddresses(t *testing.T) {
	c := ConnectionInfo{Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}}
	c.FormatAddresses()
	if c.RemoteAddress != "127.0.0.1:5" || c.LocalAddress != "" {
		t.Errorf("got %q and %q", c.RemoteAddress, c.LocalAddress)
	}
	c.Local = &net.TCPAddr{IP: net.ParseIP("::1"), Port: 80}
	c.FormatAddresses()
	if c.LocalAddress != "[::1]:80" {
		t.Errorf("local %q", c.LocalAddress)
	}
}
