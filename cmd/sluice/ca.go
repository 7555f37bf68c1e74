package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/sluice-proxy/sluice/runtime/mesh"
)

type caInitOpts struct {
	dir, trustDomain string
	ttl              time.Duration
}

func caInitFlags() (*flag.FlagSet, *caInitOpts) {
	fs := flag.NewFlagSet("ca init", flag.ContinueOnError)
	var o caInitOpts
	fs.StringVar(&o.dir, "dir", "", "the CA `directory` to create (ca.crt, ca.key)")
	fs.StringVar(&o.trustDomain, "trust-domain", "", "the trust `domain`, e.g. example.org")
	fs.DurationVar(&o.ttl, "ttl", mesh.DefaultCATTL, "how long the root is valid")
	return fs, &o
}

// cmdCAInit is `sluice ca init`: a file-based trust root (ECDSA P-256).
func cmdCAInit(args []string, stdout, stderr io.Writer) int {
	fs, o := caInitFlags()
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "(sluice ca init --help shows its flags)") }
	if fs.Parse(args) != nil {
		return 2
	}
	if o.dir == "" || o.trustDomain == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice ca init: --dir and --trust-domain are required, nothing else\n\n%s", groupUsage("ca"))
		return 2
	}
	ca, err := mesh.NewCA(o.trustDomain, o.ttl)
	if err == nil {
		err = ca.Save(o.dir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice ca init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s (trust domain %s, valid until %s)\n",
		filepath.Join(o.dir, mesh.CACertFile), filepath.Join(o.dir, mesh.CAKeyFile), o.trustDomain, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	return 0
}

type caIssueOpts struct {
	dir, id, out string
	ttl          time.Duration
}

func caIssueFlags() (*flag.FlagSet, *caIssueOpts) {
	fs := flag.NewFlagSet("ca issue", flag.ContinueOnError)
	var o caIssueOpts
	fs.StringVar(&o.dir, "dir", "", "the CA `directory` (from sluice ca init)")
	fs.StringVar(&o.id, "id", "", "the workload's SPIFFE `ID`")
	fs.StringVar(&o.out, "out", "", "output `prefix`: writes PREFIX.crt and PREFIX.key")
	fs.DurationVar(&o.ttl, "ttl", 24*time.Hour, "how long the certificate is valid")
	return fs, &o
}

// cmdCAIssue is `sluice ca issue`: a workload certificate with the SPIFFE
// ID as URI SAN, for server and client use.
func cmdCAIssue(args []string, stdout, stderr io.Writer) int {
	fs, o := caIssueFlags()
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "(sluice ca issue --help shows its flags)") }
	if fs.Parse(args) != nil {
		return 2
	}
	if o.dir == "" || o.id == "" || o.out == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice ca issue: --dir, --id and --out are required, nothing else\n\n%s", groupUsage("ca"))
		return 2
	}
	id, err := mesh.ParseID(o.id)
	if err != nil {
		fmt.Fprintf(stderr, "sluice ca issue: --id: %v\n", err)
		return 2
	}
	ca, err := mesh.LoadCA(o.dir)
	if err == nil {
		err = ca.IssueFiles(id, o.out, o.ttl)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice ca issue: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s.crt and %s.key for %s (valid for %s)\n", o.out, o.out, id, o.ttl)
	return 0
}
