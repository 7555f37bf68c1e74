package cors

import (
	"testing"

	"github.com/sluice-proxy/sluice/plugins/src/internal/common"
)

func hdr(h [][2]string, k string) string {
	v, _ := common.Header(h, k)
	return v
}

func TestPreflight(t *testing.T) {
	const kong = `{"origins":["https://app.example.com"],"methods":["GET","POST","PUT","DELETE"],"max_age":3600,"credentials":true}`
	pre := func(origin string, extra ...[2]string) [][2]string {
		return append([][2]string{{":method", "OPTIONS"}, {":path", "/api"}, {"origin", origin},
			{"access-control-request-method", "POST"}}, extra...)
	}
	tests := []struct {
		name      string
		cfg       string
		req       [][2]string
		wantReply bool
		acao      string
		acah      string
	}{
		{"allowed origin", kong, pre("https://app.example.com", [2]string{"access-control-request-headers", "x-a"}), true, "https://app.example.com", "x-a"},
		{"other origin", kong, pre("https://evil.example.com"), true, "", ""},
		{"not a preflight", kong, [][2]string{{":method", "OPTIONS"}, {"origin", "https://app.example.com"}}, false, "", ""},
		{"GET", kong, [][2]string{{":method", "GET"}, {"origin", "https://app.example.com"}}, false, "", ""},
		{"continue", `{"preflight_continue":true}`, pre("https://a.com"), false, "", ""},
		{"star", `{}`, pre("https://a.com"), true, "*", ""},
		{"regex", `{"origins":["https://.*\\.example\\.org"],"headers":["x-b","x-c"]}`, pre("https://x.example.org"), true, "https://x.example.org", "x-b,x-c"},
		{"regex anchored", `{"origins":["https://.*\\.example\\.org"]}`, pre("https://x.example.org.evil.com"), true, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.cfg))
			if err != nil {
				t.Fatal(err)
			}
			r := c.Preflight(tc.req)
			if (r != nil) != tc.wantReply {
				t.Fatalf("reply = %v, want one: %v", r, tc.wantReply)
			}
			if r == nil {
				return
			}
			if r.Status != 200 {
				t.Errorf("status = %d, want 200", r.Status)
			}
			if got := hdr(r.Headers, "access-control-allow-origin"); got != tc.acao {
				t.Errorf("ACAO = %q, want %q", got, tc.acao)
			}
			if got := hdr(r.Headers, "access-control-allow-headers"); got != tc.acah {
				t.Errorf("ACAH = %q, want %q", got, tc.acah)
			}
			if tc.acao == "https://app.example.com" {
				if hdr(r.Headers, "access-control-allow-methods") != "GET,POST,PUT,DELETE" ||
					hdr(r.Headers, "access-control-max-age") != "3600" ||
					hdr(r.Headers, "access-control-allow-credentials") != "true" || hdr(r.Headers, "vary") != "Origin" {
					t.Errorf("preflight headers = %q", r.Headers)
				}
			}
		})
	}
}

func TestResponseHeaders(t *testing.T) {
	c, _ := Parse([]byte(`{"origins":["https://app.example.com"],"exposed_headers":["x-total"]}`))
	h := c.ResponseHeaders("https://app.example.com")
	if hdr(h, "access-control-allow-origin") != "https://app.example.com" || hdr(h, "access-control-expose-headers") != "x-total" {
		t.Errorf("headers = %q", h)
	}
	if h := c.ResponseHeaders("https://other.com"); h != nil {
		t.Errorf("headers for a disallowed origin: %q", h)
	}
	star, _ := Parse([]byte(`{"origins":["*"],"credentials":true}`))
	if got := hdr(star.ResponseHeaders("https://z.com"), "access-control-allow-origin"); got != "https://z.com" {
		t.Errorf("star with credentials: ACAO = %q, want the origin echoed", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, cfg := range []string{`{"origins":["(("]}`, `{"methods":["get"]}`, `{"max_age":-1}`, `{"origin":["x"]}`} {
		if _, err := Parse([]byte(cfg)); err == nil {
			t.Errorf("Parse(%s) succeeded", cfg)
		}
	}
}
