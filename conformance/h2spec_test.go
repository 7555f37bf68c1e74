package conformance

import (
	"net"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/conformance/h2spectest"
)

func TestH2Spec(t *testing.T) {
	h2spec := h2spectest.Binary()
	for _, s := range []string{SuiteH2SpecMixed, SuiteH2SpecH2C, SuiteH2SpecTLS} {
		report.Suite(s, "h2spec v2.2.1 (`.ci/tools.sh`), all generic, HPACK and RFC 7540 cases, against a sluice listener whose route forwards to an HTTP/1.1 upstream. Case names are h2spec's section/number.")
	}
	if h2spec == "" {
		for _, s := range []string{SuiteH2SpecMixed, SuiteH2SpecH2C, SuiteH2SpecTLS} {
			record(t, s, Row{Case: "h2spec", Skipped: true, Note: "h2spec not installed (make tools installs it)"})
		}
		t.Skip("h2spec not installed")
	}
	up := startUpstream(t)
	p := newPKI(t)
	listener := func(protocols, extra string) string {
		return base + `
[[listeners]]
name = "l"
address = "127.0.0.1:0"
protocols = [` + protocols + `]
` + extra + `
[[routes]]
name = "all"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["` + up + `"]
`
	}
	for _, tc := range []struct {
		suite string
		cfg   string
		tls   bool
	}{
		{SuiteH2SpecMixed, listener(`"http1", "h2c"`, ""), false},
		{SuiteH2SpecH2C, listener(`"h2c"`, ""), false},
		{SuiteH2SpecTLS, listener(`"http1", "h2"`, `tls = { cert = "`+p.CertFile+`", key = "`+p.KeyFile+`" }`), true},
	} {
		t.Run(tc.suite, func(t *testing.T) {
			s := startSluice(t, tc.cfg)
			_, port, _ := net.SplitHostPort(s.ListenerAddr("l"))
			runH2Spec(t, h2spec, tc.suite, port, tc.tls)
		})
	}
}

func runH2Spec(t *testing.T, bin, suite, port string, useTLS bool) {
	cases, console, err := h2spectest.Run(bin, port, useTLS, t.TempDir())
	if err != nil {
		record(t, suite, Row{Case: "h2spec run", Note: err.Error() + ": " + tail(console, 300)})
		return
	}
	for _, c := range cases {
		row := Row{Case: c.ID, Pass: c.Pass, Skipped: c.Skipped, Note: c.Desc}
		switch {
		case c.Skipped:
			row.Note = c.Desc + ": skipped by h2spec"
		case !c.Pass:
			row.Note = strings.TrimSpace(c.Desc + ": " + c.Reason)
		}
		record(t, suite, row)
	}
	if len(cases) == 0 {
		record(t, suite, Row{Case: "h2spec run", Note: "JUnit report has no cases: " + tail(console, 300)})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
