package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParse feeds the config loader (decode, check, complete, validate)
// and the /config dump arbitrary text. It must never panic or hang: every
// input is a config or a list of problems, each naming the file. Seeds:
// the examples, the golden configs, the bombs (cut to a size the parser
// takes quickly without the caps) and strings that end where they seem
// not to (testdata/fuzz/FuzzParse holds what the fuzzer found).
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("../../examples/*.toml")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	txtars, _ := filepath.Glob("testdata/*.txtar")
	for _, p := range txtars {
		b, _ := os.ReadFile(p)
		for _, file := range parseArchive(string(b)).files {
			if strings.HasSuffix(file.name, ".toml") {
				f.Add([]byte(file.data))
			}
		}
	}
	if b, err := os.ReadFile("../../plugins/testdata/secrets.toml"); err == nil {
		f.Add(b)
	}
	for _, gen := range nested {
		f.Add([]byte(gen(MaxDepth + 1)))
		f.Add([]byte(gen(MaxDepth - 2)))
	}
	for _, s := range []string{
		"a = \"\"\"\n[\n\"\"\"\"\"\nb = [[[",
		"a = '''x''''\n[b]\nc = {d = [1,2,{e=3}]}",
		"[[routes]]\nname = \"r\"\n[routes.match]\npath = \"/\"\n[[routes.backends]]\ncluster = \"c\"",
		"[a.\"b.c\".'d']\ne = 1",
		"\ufeff[x]\ny = 1",
		"a = {b.c = 1, d = [ {e.f = 2} ]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %q is not a list of problems", err)
			}
			for _, p := range ce.Problems {
				if p.File != "fuzz.toml" || p.Msg == "" {
					t.Fatalf("problem %+v lacks its file or message", p)
				}
			}
		} else if _, err := c.JSON(); err != nil {
			t.Fatalf("a loaded config does not dump: %v", err)
		}
		// The scan measures what the parser builds: a file it accepts is
		// not much deeper than measured, and a file well within the depth
		// is not refused for depth.
		if len(data) > MaxFileBytes {
			return
		}
		var s depthScanner
		refused := s.scan(data) != 0
		var raw map[string]any
		if _, err := toml.Decode(string(data), &raw); err != nil {
			return
		}
		d := treeDepth(raw)
		if !refused && d > 2*s.deepest && d > 2 {
			t.Fatalf("tree %d deep measured %d", d, s.deepest)
		}
		if refused && s.parts <= MaxKeyParts && s.bytes <= MaxKeyBytes && d <= MaxDepth-2 {
			t.Fatalf("a tree %d deep refused as deeper than %d", d, MaxDepth)
		}
	})
}
