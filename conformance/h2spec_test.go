package conformance

import (
	"context"
	"encoding/xml"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// h2specBinary finds h2spec where `.ci/tools.sh` installs it.
func h2specBinary() string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin", "h2spec")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// junit is the part of h2spec's JUnit report we read.
type junit struct {
	Suites []struct {
		Name    string `xml:"name,attr"`
		Package string `xml:"package,attr"`
		Cases   []struct {
			ClassName string `xml:"classname,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestH2Spec(t *testing.T) {
	h2spec := h2specBinary()
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
	out := filepath.Join(t.TempDir(), "junit.xml")
	args := []string{"-h", "127.0.0.1", "-p", port, "-o", "3", "-j", out}
	if useTLS {
		args = append(args, "-t", "-k")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	console, _ := cmd.CombinedOutput() // exits 1 when a case fails
	b, err := os.ReadFile(out)
	if err != nil {
		record(t, suite, Row{Case: "h2spec run", Note: "no JUnit report: " + err.Error() + ": " + tail(string(console), 300)})
		return
	}
	var j junit
	if err := xml.Unmarshal(b, &j); err != nil {
		record(t, suite, Row{Case: "h2spec run", Note: "unreadable JUnit report: " + err.Error()})
		return
	}
	n := 0
	for _, ts := range j.Suites {
		// A case is keyed by h2spec's own numbering: the suite's package
		// ("http2/6.5.3") and the case's position in it; its classname is
		// the case's description.
		idx := 0
		for _, c := range ts.Cases {
			idx++
			n++
			row := Row{Case: ts.Package + "/" + itoa(idx)}
			switch {
			case c.Skipped != nil:
				row.Skipped, row.Note = true, "skipped by h2spec"
			case c.Failure != nil:
				row.Note = strings.TrimSpace(c.Failure.Message + " " + c.Failure.Body)
			case c.Error != nil:
				row.Note = strings.TrimSpace(c.Error.Message + " " + c.Error.Body)
			default:
				row.Pass = true
			}
			if !row.Pass {
				row.Note = strings.TrimSpace(c.ClassName + ": " + row.Note)
			} else {
				row.Note = c.ClassName
			}
			record(t, suite, row)
		}
	}
	if n == 0 {
		record(t, suite, Row{Case: "h2spec run", Note: "JUnit report has no cases: " + tail(string(console), 300)})
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
