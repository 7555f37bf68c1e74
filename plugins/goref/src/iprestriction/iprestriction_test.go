package iprestriction

import "testing"

func TestAllowed(t *testing.T) {
	tests := []struct {
		cfg  string
		ip   string
		want bool
	}{
		{`{}`, "1.2.3.4", true},
		{`{"deny":["10.0.0.0/8"]}`, "10.1.2.3", false},
		{`{"deny":["10.0.0.0/8"]}`, "11.1.2.3", true},
		{`{"deny":["10.0.0.0/8"]}`, "::ffff:10.1.2.3", false},
		{`{"allow":["192.168.1.0/24","127.0.0.1"]}`, "192.168.1.77", true},
		{`{"allow":["192.168.1.0/24","127.0.0.1"]}`, "127.0.0.1", true},
		{`{"allow":["192.168.1.0/24","127.0.0.1"]}`, "127.0.0.2", false},
		{`{"allow":["10.0.0.5"],"deny":["10.0.0.0/8"]}`, "10.0.0.5", true},
		{`{"allow":["10.0.0.5"],"deny":["10.0.0.0/8"]}`, "10.0.0.6", false},
		{`{"allow":["2001:db8::/32"]}`, "2001:db8::1", true},
		{`{"allow":["2001:db8::/32"]}`, "2001:db9::1", false},
		{`{"deny":["1.2.3.4"]}`, "", false},
		{`{"deny":["1.2.3.4"]}`, "not-an-ip", false},
	}
	for _, tc := range tests {
		f, err := Parse([]byte(tc.cfg))
		if err != nil {
			t.Fatalf("%s: %v", tc.cfg, err)
		}
		if got := f.Allowed(tc.ip); got != tc.want {
			t.Errorf("%s: Allowed(%q) = %v, want %v", tc.cfg, tc.ip, got, tc.want)
		}
	}
}

func TestReplyAndErrors(t *testing.T) {
	f, _ := Parse([]byte(`{"status":401,"message":"go away"}`))
	if r := f.Reply(); r.Status != 401 || string(r.Body) != `{"message":"go away"}` {
		t.Errorf("reply = %d %s", r.Status, r.Body)
	}
	d, _ := Parse(nil)
	if r := d.Reply(); r.Status != 403 || string(r.Body) != `{"message":"IP address not allowed"}` {
		t.Errorf("default reply = %d %s", r.Status, r.Body)
	}
	for _, cfg := range []string{`{"allow":["10.0.0.0/33"]}`, `{"deny":["x"]}`, `{"status":42}`, `{"whitelist":["1.1.1.1"]}`} {
		if _, err := Parse([]byte(cfg)); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
}
