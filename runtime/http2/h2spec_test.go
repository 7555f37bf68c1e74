package http2

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/sluice-proxy/sluice/conformance/h2spectest"
)

// TestH2Spec: every h2spec case (generic, HPACK, RFC 7540) passes against
// a server made of this codec and the echo handler, over h2c with prior
// knowledge and over TLS with ALPN h2. Among them are the three Go's own
// server fails: 6.5.3/1 (a repeated setting: the last value wins) and
// 8.1.2.2/1 and /2 (a connection-specific field or TE other than
// "trailers": RST_STREAM PROTOCOL_ERROR, not a 400).
func TestH2Spec(t *testing.T) {
	bin := h2spectest.Binary()
	if bin == "" {
		t.Skip("h2spec not installed")
	}
	for _, useTLS := range []bool{false, true} {
		name := "h2c"
		var conf *tls.Config
		if useTLS {
			name = "h2"
			conf = testTLSConfig(t)
		}
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, &Server{}, echo, conf)
			_, port, _ := net.SplitHostPort(ts.addr())
			cases, console, err := h2spectest.Run(bin, port, useTLS, t.TempDir())
			if err != nil {
				t.Fatalf("%v\n%s", err, console)
			}
			failed := false
			for _, c := range cases {
				switch {
				case c.Skipped:
					t.Errorf("%s %s: skipped", c.ID, c.Desc)
				case !c.Pass:
					t.Errorf("%s %s: %s", c.ID, c.Desc, c.Reason)
				}
				failed = failed || !c.Pass
			}
			if failed {
				t.Logf("h2spec output:\n%s", tail(console, 4000))
			}
			if len(cases) < 145 {
				t.Errorf("h2spec ran %d cases, want 145", len(cases))
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
