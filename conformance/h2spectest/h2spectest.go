// Package h2spectest runs h2spec (the HTTP/2 conformance tool `.ci/tools.sh`
// installs) against a server on 127.0.0.1 and reads its JUnit report, for
// the tests that hold sluice's HTTP/2 to it: the codec's own
// (runtime/http2) and the listeners' (conformance).
package h2spectest

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Binary finds h2spec on PATH or in GOPATH/bin, where `.ci/tools.sh`
// installs it; "" when it is missing.
func Binary() string {
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

// Case is one h2spec case's outcome.
type Case struct {
	// ID is h2spec's own numbering: the section's package ("http2/6.5.3")
	// and the case's position in it, "http2/6.5.3/1".
	ID string
	// Desc is the case's description (its JUnit classname).
	Desc          string
	Pass, Skipped bool
	// Reason is why a case failed: h2spec's message and detail.
	Reason string
}

// Run runs every h2spec case against 127.0.0.1:port (over TLS with ALPN h2
// when useTLS), writing its report under dir. console is what h2spec
// printed; an error means there is no readable report.
func Run(bin, port string, useTLS bool, dir string) (cases []Case, console string, err error) {
	out := filepath.Join(dir, "junit.xml")
	args := []string{"-h", "127.0.0.1", "-p", port, "-o", "3", "-j", out}
	if useTLS {
		args = append(args, "-t", "-k")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	b, _ := cmd.CombinedOutput() // exits 1 when a case fails
	console = string(b)
	report, err := os.ReadFile(out)
	if err != nil {
		return nil, console, fmt.Errorf("no JUnit report: %w", err)
	}
	var j junit
	if err := xml.Unmarshal(report, &j); err != nil {
		return nil, console, fmt.Errorf("unreadable JUnit report: %w", err)
	}
	for _, s := range j.Suites {
		for i, c := range s.Cases {
			k := Case{ID: s.Package + "/" + strconv.Itoa(i+1), Desc: c.ClassName}
			switch {
			case c.Skipped != nil:
				k.Skipped = true
			case c.Failure != nil:
				k.Reason = strings.TrimSpace(c.Failure.Message + " " + c.Failure.Body)
			case c.Error != nil:
				k.Reason = strings.TrimSpace(c.Error.Message + " " + c.Error.Body)
			default:
				k.Pass = true
			}
			cases = append(cases, k)
		}
	}
	return cases, console, nil
}

// junit is the part of h2spec's JUnit report Run reads.
type junit struct {
	Suites []struct {
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
