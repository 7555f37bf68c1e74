package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// runBinary runs the built sluice with args, bounded, and returns its exit
// code and output.
func runBinary(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatalf("sluice %s: %v", strings.Join(args, " "), err)
	}
	return 0, out.String(), errb.String()
}

// TestHelpListsEveryCommand: `sluice --help` names every command a user
// can type, `ca` included, and exits 0.
func TestHelpListsEveryCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSluice(t)
	for _, flag := range []string{"--help", "-h", "help"} {
		code, out, errOut := runBinary(t, bin, flag)
		if code != 0 || errOut != "" {
			t.Errorf("sluice %s: exit %d, stderr %q; want 0 and usage on stdout", flag, code, errOut)
		}
		for _, want := range []string{"run", "validate", "ca init", "ca issue", "plugin init", "version"} {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(want) + ` `).MatchString(out) {
				t.Errorf("sluice %s does not list %q:\n%s", flag, want, out)
			}
		}
	}
}

// TestEveryCommandAnswersHelp: each command and sub-command, and each
// group (`sluice ca`), answers -h and --help with its usage on stdout and
// exit 0, even with other flags present or required ones missing.
func TestEveryCommandAnswersHelp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSluice(t)
	type tc struct {
		args []string
		want []string // in stdout
	}
	var cases []tc
	for _, c := range commands {
		words := strings.Fields(c.path)
		want := []string{"Usage:", "sluice " + c.path}
		if c.flags != nil {
			c.flags().VisitAll(func(f *flag.Flag) { want = append(want, "--"+f.Name) })
		}
		for _, h := range []string{"-h", "--help"} {
			cases = append(cases, tc{append(append([]string{}, words...), h), want})
		}
	}
	cases = append(cases,
		tc{[]string{"ca", "--help"}, []string{"sluice ca init", "sluice ca issue"}},
		tc{[]string{"ca", "-h"}, []string{"sluice ca init", "sluice ca issue"}},
		tc{[]string{"plugin", "--help"}, []string{"sluice plugin init"}},
		tc{[]string{"run", "--config", "missing.toml", "--help"}, []string{"sluice run", "--log-level"}},
		tc{[]string{"ca", "issue", "--dir", "x", "-h"}, []string{"sluice ca issue", "--out"}},
		tc{[]string{"help", "ca", "init"}, []string{"sluice ca init", "--trust-domain"}},
	)
	for _, c := range cases {
		code, out, errOut := runBinary(t, bin, c.args...)
		name := "sluice " + strings.Join(c.args, " ")
		if code != 0 {
			t.Errorf("%s: exit %d, want 0; stderr %q", name, code, errOut)
		}
		if errOut != "" {
			t.Errorf("%s: wrote to stderr %q; help goes to stdout", name, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: usage lacks %q:\n%s", name, w, out)
			}
		}
	}

	// Mistakes still exit 2 with the usage on stderr.
	for _, args := range [][]string{{}, {"ca"}, {"ca", "bogus"}, {"frobnicate"}, {"run"}, {"run", "--bogus"}, {"version", "extra"}} {
		code, out, errOut := runBinary(t, bin, args...)
		if code != 2 || errOut == "" || out != "" {
			t.Errorf("sluice %s: exit %d, stdout %q, stderr %q; want 2 with a message on stderr", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// TestVersionNamesGoAndWazero: `sluice version` prints sluice's version,
// the Go release it was built with and the wazero version go.mod pins.
func TestVersionNamesGoAndWazero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/tetratelabs/wazero (\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod does not require wazero")
	}
	bin := buildSluice(t)
	code, out, _ := runBinary(t, bin, "version")
	want := []string{"sluice " + defaultVersion + "\n", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n", "wazero " + string(m[1]) + "\n"}
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("sluice version lacks %q:\n%s", w, out)
		}
	}
	if _, out2, _ := runBinary(t, bin, "--version"); out2 != out {
		t.Errorf("--version printed %q, version %q", out2, out)
	}
}
