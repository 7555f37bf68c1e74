package http2

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// h2specBinary finds h2spec on PATH or in GOPATH/bin; "" when missing.
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

// TestH2Spec: every h2spec case (generic, HPACK, RFC 7540) passes against
// a server made of this codec and the echo handler, over h2c with prior
// knowledge and over TLS with ALPN h2. Among them are the three Go's own
// server fails: 6.5.3/1 (a repeated setting: the last value wins) and
// 8.1.2.2/1 and /2 (a connection-specific field or TE other than
// "trailers": RST_STREAM PROTOCOL_ERROR, not a 400).
func TestH2Spec(t *testing.T) {
	bin := h2specBinary()
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
			failed, total := runH2Spec(t, bin, port, useTLS)
			for _, f := range failed {
				t.Error(f)
			}
			if total < 145 {
				t.Errorf("h2spec ran %d cases, want 145", total)
			}
		})
	}
}

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
			} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func runH2Spec(t *testing.T, bin, port string, useTLS bool) (failed []string, total int) {
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
		t.Fatalf("no h2spec report: %v\n%s", err, console)
	}
	var j junit
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	for _, s := range j.Suites {
		for i, c := range s.Cases {
			total++
			name := s.Package + "/" + itoa(i+1) + " " + c.ClassName
			switch {
			case c.Skipped != nil:
				failed = append(failed, name+": skipped")
			case c.Failure != nil:
				failed = append(failed, name+": "+strings.TrimSpace(c.Failure.Message+" "+c.Failure.Body))
			case c.Error != nil:
				failed = append(failed, name+": "+c.Error.Message)
			}
		}
	}
	if len(failed) > 0 {
		t.Logf("h2spec output:\n%s", tail(string(console), 4000))
	}
	return failed, total
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
