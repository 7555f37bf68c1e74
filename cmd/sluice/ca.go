package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/sluice-proxy/sluice/runtime/mesh"
)

const caUsage = `Usage:
  sluice ca init  --dir DIR --trust-domain DOMAIN [--ttl 87600h]
  sluice ca issue --dir DIR --id spiffe://DOMAIN/ns/NS/sa/NAME --out PREFIX [--ttl 24h]
`

// cmdCA is `sluice ca`: a file-based trust root and workload certificates
// (ECDSA P-256, the SPIFFE ID as URI SAN, server and client use).
func cmdCA(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, caUsage)
		return 2
	}
	fs := flag.NewFlagSet("ca "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the CA directory (ca.crt, ca.key)")
	switch args[0] {
	case "init":
		td := fs.String("trust-domain", "", "the trust domain, e.g. example.org")
		ttl := fs.Duration("ttl", mesh.DefaultCATTL, "how long the root is valid")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		if *dir == "" || *td == "" {
			fmt.Fprintf(stderr, "sluice ca init: --dir and --trust-domain are required\n\n%s", caUsage)
			return 2
		}
		ca, err := mesh.NewCA(*td, *ttl)
		if err == nil {
			err = ca.Save(*dir)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sluice ca init: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s and %s (trust domain %s, valid until %s)\n",
			filepath.Join(*dir, mesh.CACertFile), filepath.Join(*dir, mesh.CAKeyFile), *td, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
		return 0
	case "issue":
		idFlag := fs.String("id", "", "the workload's SPIFFE ID")
		out := fs.String("out", "", "output prefix: writes PREFIX.crt and PREFIX.key")
		ttl := fs.Duration("ttl", 24*time.Hour, "how long the certificate is valid")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		if *dir == "" || *idFlag == "" || *out == "" {
			fmt.Fprintf(stderr, "sluice ca issue: --dir, --id and --out are required\n\n%s", caUsage)
			return 2
		}
		id, err := mesh.ParseID(*idFlag)
		if err != nil {
			fmt.Fprintf(stderr, "sluice ca issue: --id: %v\n", err)
			return 2
		}
		ca, err := mesh.LoadCA(*dir)
		if err == nil {
			err = ca.IssueFiles(id, *out, *ttl)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sluice ca issue: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s.crt and %s.key for %s (valid for %s)\n", *out, *out, id, *ttl)
		return 0
	}
	fmt.Fprintf(stderr, "sluice ca: unknown command %q\n\n%s", args[0], caUsage)
	return 2
}
