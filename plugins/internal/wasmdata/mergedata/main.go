// Command mergedata merges the data segments of a WebAssembly module (see
// package wasmdata); `make -C plugins build` runs it on builtin.wasm.
//
//	go run ./internal/wasmdata/mergedata [-gap N] IN OUT
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sluice-proxy/sluice/plugins/internal/wasmdata"
)

func main() {
	gap := flag.Int("gap", wasmdata.DefaultGap, "merge segments at most this many zero bytes apart")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: mergedata [-gap N] IN OUT")
		os.Exit(2)
	}
	in, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, before, after, err := wasmdata.Merge(in, *gap)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mergedata %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	if err := os.WriteFile(flag.Arg(1), out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("data segments: %d -> %d; module %d -> %d bytes\n", before, after, len(in), len(out))
}
