// Package runtime_test holds the checks that span the runtime's packages.
package runtime_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sluice-proxy/sluice"

// layer is one rule of the import graph: pkg (with what it imports, all
// the way down unless direct) must not reach an import path that forbid
// refuses.
type layer struct {
	pkg    string
	direct bool // only pkg's own imports, not theirs
	why    string
	forbid func(path string) bool
}

func sluicePkg(p string) bool { return strings.HasPrefix(p, module+"/") }
func wasmPkg(p string) bool {
	return strings.HasPrefix(p, "github.com/tetratelabs/wazero") || p == module+"/hostabi" || strings.HasPrefix(p, module+"/hostabi/")
}

var layers = []layer{
	{pkg: "hostabi", why: "the Wasm host never depends on the proxy",
		forbid: func(p string) bool { return sluicePkg(p) && !strings.HasPrefix(p, module+"/hostabi") }},
	{pkg: "runtime/filter", why: "the filter contract is a leaf on the stream model",
		forbid: func(p string) bool { return sluicePkg(p) && p != module+"/runtime/stream" }},
	{pkg: "runtime/wasmfilter", why: "the Wasm binding knows the contract and the host, not the proxy",
		forbid: func(p string) bool {
			return sluicePkg(p) && !wasmPkg(p) && !slices.Contains([]string{"runtime/filter", "runtime/stream", "runtime/config", "runtime/pluginsource", "runtime/stats", "plugins"}, strings.TrimPrefix(p, module+"/"))
		}},
	{pkg: "runtime/stream", why: "the stream model is a leaf every codec shares", forbid: sluicePkg},
	{pkg: "runtime/iohandle", why: "the socket is a leaf under listeners and pools", forbid: sluicePkg},
	{pkg: "runtime/lazytimer", why: "the connection timer is a leaf under both HTTP/1.1 sides", forbid: sluicePkg},
	{pkg: "runtime/clock", why: "the request path's clock is a leaf under the codec, the proxy and the pools", forbid: sluicePkg},
	{pkg: "runtime/httpstream", why: "the net/http adapter knows the stream contract only",
		forbid: func(p string) bool { return sluicePkg(p) && p != module+"/runtime/stream" }},
	{pkg: "runtime/http1", why: "the codec knows no Wasm engine", forbid: wasmPkg},
	{pkg: "runtime/config", why: "config knows no Wasm engine", forbid: wasmPkg},
	{pkg: "runtime/config", why: "config parses plugin sources and never fetches them (runtime/wasmsource and its registry client)",
		forbid: func(p string) bool { return p == module+"/runtime/wasmsource" }},
	{pkg: "runtime/pluginsource", why: "parsing a plugin's source is a leaf the config can import", forbid: sluicePkg},
	{pkg: "runtime/route", why: "routing knows no Wasm engine", forbid: wasmPkg},
	{pkg: "runtime/mesh", why: "mesh sees filters through the contract only", forbid: wasmPkg},
	{pkg: "runtime/upstream", why: "the cluster manager knows no Wasm engine", forbid: wasmPkg},
	{pkg: "runtime/listen", why: "listeners know no Wasm engine", forbid: wasmPkg},
	{pkg: "runtime/l4", why: "network filters go through the contract (runtime/wasmfilter binds them)", forbid: wasmPkg},
	{pkg: "runtime/proxy", direct: true, why: "the stream core runs filters through the contract (runtime/wasmfilter binds them)", forbid: wasmPkg},
}

// TestLayering: each rule above holds; a failure names the forbidden
// import and the chain of imports that reaches it.
func TestLayering(t *testing.T) {
	args := []string{"list", "-deps", "-json=ImportPath,Imports"}
	for _, l := range layers {
		args = append(args, module+"/"+l.pkg)
	}
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v: %s", err, ee.Stderr)
		}
		t.Skipf("go list unavailable: %v", err)
	}
	imports := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		imports[p.ImportPath] = p.Imports
	}
	for _, l := range layers {
		root := module + "/" + l.pkg
		if _, ok := imports[root]; !ok {
			t.Errorf("%s: not listed by go list", l.pkg)
			continue
		}
		for _, chain := range violations(imports, root, l) {
			t.Errorf("%s imports %s (%s): %s", l.pkg, chain[len(chain)-1], l.why, strings.Join(chain, " -> "))
		}
	}
}

// violations walks root's imports breadth first and returns, for each
// forbidden package reached, the shortest chain from root to it (without
// walking further through it).
func violations(imports map[string][]string, root string, l layer) [][]string {
	from := map[string]string{root: ""}
	queue := []string{root}
	var found [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, dep := range imports[p] {
			if _, seen := from[dep]; seen {
				continue
			}
			from[dep] = p
			if l.forbid(dep) {
				chain := []string{dep}
				for q := p; q != ""; q = from[q] {
					chain = append(chain, q)
				}
				slices.Reverse(chain)
				found = append(found, chain)
				continue
			}
			if !l.direct {
				queue = append(queue, dep)
			}
		}
	}
	return found
}
