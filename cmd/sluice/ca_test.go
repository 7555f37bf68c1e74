package main

import (
	"bytes"
	"crypto/tls"
	"path/filepath"
	"testing"
)

func TestCAInitIssue(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if rc := run([]string{"ca", "init", "--dir", dir, "--trust-domain", "example.org"}, &out, &errb); rc != 0 {
		t.Fatalf("init: %d %s", rc, errb.String())
	}
	prefix := filepath.Join(dir, "orders")
	if rc := run([]string{"ca", "issue", "--dir", dir, "--id", "spiffe://example.org/ns/default/sa/orders", "--out", prefix, "--ttl", "2h"}, &out, &errb); rc != 0 {
		t.Fatalf("issue: %d %s", rc, errb.String())
	}
	pair, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	if len(pair.Leaf.URIs) != 1 || pair.Leaf.URIs[0].String() != "spiffe://example.org/ns/default/sa/orders" {
		t.Errorf("URI SANs %v", pair.Leaf.URIs)
	}
	if d := pair.Leaf.NotAfter.Sub(pair.Leaf.NotBefore); d < 2*60*60e9 || d > 2*60*60e9+2*60e9 {
		t.Errorf("validity %v, want about 2h", d)
	}
	// Refusals: another trust domain, a second init, a bad ID.
	for _, args := range [][]string{
		{"ca", "issue", "--dir", dir, "--id", "spiffe://other.org/ns/a/sa/b", "--out", prefix},
		{"ca", "init", "--dir", dir, "--trust-domain", "example.org"},
		{"ca", "issue", "--dir", dir, "--id", "http://x", "--out", prefix},
	} {
		errb.Reset()
		if rc := run(args, &out, &errb); rc == 0 {
			t.Errorf("%v: succeeded", args)
		}
	}
}
