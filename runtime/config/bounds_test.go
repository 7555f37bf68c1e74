package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// nested builds the config bombs of the hardening report and their kin,
// n levels deep.
var nested = map[string]func(n int) string{
	"inline tables": func(n int) string {
		return "a = " + strings.Repeat("{b=", n) + "1" + strings.Repeat("}", n) + "\n"
	},
	"arrays": func(n int) string {
		return "a = " + strings.Repeat("[", n) + "1" + strings.Repeat("]", n) + "\n"
	},
	"arrays of tables": func(n int) string {
		return "a = " + strings.Repeat("[{b=", n) + "1" + strings.Repeat("}]", n) + "\n"
	},
	"dotted key": func(n int) string { return strings.Repeat("a.", n) + "a = 1\n" },
	"header":     func(n int) string { return "[" + strings.Repeat("a.", n) + "a]\nb = 1\n" },
	"array header": func(n int) string {
		return "[[" + strings.Repeat("a.", n) + "a]]\nb = 1\n"
	},
	"dotted keys in inline tables": func(n int) string {
		return "x = " + strings.Repeat("{a.b=", n) + "1" + strings.Repeat("}", n) + "\n"
	},
}

// The bombs of the report (4,000 and 20,000 nested inline tables) and
// their kin are refused before the TOML parser sees them: quickly, in
// little memory, with the file and the line.
func TestNestingBombsRefused(t *testing.T) {
	for name, gen := range nested {
		for _, n := range []int{4000, 20000} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				data := []byte("# a bomb\n" + gen(n))
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				_, err := Parse("bomb.toml", data)
				runtime.ReadMemStats(&after)
				var ce *Error
				if !errors.As(err, &ce) || len(ce.Problems) != 1 {
					t.Fatalf("got %v, want one problem", err)
				}
				want := fmt.Sprintf("bomb.toml:2: tables, arrays and dotted keys nest more than %d deep", MaxDepth)
				if got := err.Error(); got != want {
					t.Errorf("error %q, want %q", got, want)
				}
				// The parser took 905 MB for 4,000 levels; the scan
				// allocates nothing but the error.
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
					t.Errorf("refusing took %d bytes of allocation", alloc)
				}
			})
		}
	}
}

// The depth counted is the depth of the tree the parser builds: each form
// is accepted MaxDepth deep and refused one step deeper.
func TestNestingLimitEdge(t *testing.T) {
	for name, gen := range nested {
		t.Run(name, func(t *testing.T) {
			// Find the deepest n the scan accepts, then compare with the tree.
			n := 0
			for checkBounds("f", []byte(gen(n+1))) == nil {
				n++
				if n > 2*MaxDepth {
					t.Fatal("never refused")
				}
			}
			var raw map[string]any
			if _, err := toml.Decode(gen(n), &raw); err != nil {
				t.Fatal(err)
			}
			// Forms that nest two levels a step reach MaxDepth-1.
			if d := treeDepth(raw); d != MaxDepth && d != MaxDepth-1 {
				t.Errorf("deepest accepted file has a tree %d deep, want %d", d, MaxDepth)
			}
			var over map[string]any
			if _, err := toml.Decode(gen(n+1), &over); err != nil {
				t.Fatal(err)
			}
			if d := treeDepth(over); d <= MaxDepth {
				t.Errorf("refused a file only %d deep", d)
			}
		})
	}
}

func treeDepth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, 1+treeDepth(e))
		}
	case []map[string]any:
		for _, e := range x {
			d = max(d, 1+treeDepth(e))
		}
	case []any:
		for _, e := range x {
			d = max(d, 1+treeDepth(e))
		}
	}
	return d
}

// Brackets, dots and comment signs inside TOML's four kinds of string, and
// in comments, are not nesting; quotes inside the other kind of string or
// escaped do not end one.
func TestNestingScanSkipsStringsAndComments(t *testing.T) {
	deep := strings.Repeat("{[", 100)
	for _, text := range []string{
		`a = "` + deep + `"`,
		`a = "\"` + deep + `"`,
		`a = "\\" # ` + deep,
		`a = '` + deep + `'`,
		`a = '\' # ` + deep,
		"a = \"\"\"\n" + deep + "\n\"\"\"",
		"a = \"\"\"\"\"" + deep + "\"\"\"\"\"",
		"a = \"\"\" \\\"\"\" " + deep + "\"\"\"",
		"a = '''\n" + deep + "\n'''",
		"a = ''''" + deep + "''''",
		"a = '''\"\"\"" + deep + "'''",
		"a = \"\"\"'''" + deep + "\"\"\"",
		"# " + deep,
		`"` + strings.Repeat("a.", 100) + `" = 1`,
		`'` + strings.Repeat("a.", 100) + `' = 1`,
		`[ "` + strings.Repeat("a.", 100) + `" ]`,
		"a = 1.5e3\nb = 1979-05-27T07:32:00.999Z\nc = [" + strings.Repeat("1.5, ", 200) + "]",
	} {
		if p := checkBounds("f", []byte(text)); p != nil {
			t.Errorf("%q refused: %s", text, p)
		}
		var raw map[string]any
		if _, err := toml.Decode(text, &raw); err != nil {
			t.Errorf("%q is not TOML: %v", text, err)
		}
	}
	// The same nesting outside the strings is refused, on its own line.
	for _, text := range []string{
		"a = \"\"\"\n{\n\"\"\"\nb = " + strings.Repeat("[", 100),
		"a = '''x'''\nb = " + strings.Repeat("[", 100),
		"a = \"x\\\"\" # \"\nb = " + strings.Repeat("[", 100),
	} {
		p := checkBounds("f", []byte(text))
		if p == nil || p.Line != strings.Count(text, "\n")+1 {
			t.Errorf("%q: got %v, want a refusal on its last line", text, p)
		}
	}
}

// Every config we ship or test with passes the scan, and is never
// measured shallower than half its tree (an array of tables named in a
// header, [[a.b]] under [[a]], counts once per part, not twice).
func TestNestingAcceptsKnownConfigs(t *testing.T) {
	paths, _ := filepath.Glob("../../examples/*.toml")
	txtars, _ := filepath.Glob("testdata/*.txtar")
	if len(paths) == 0 || len(txtars) == 0 {
		t.Fatal("no configs found")
	}
	var texts []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(b))
	}
	for _, p := range txtars {
		b, _ := os.ReadFile(p)
		for _, f := range parseArchive(string(b)).files {
			if strings.HasSuffix(f.name, ".toml") {
				texts = append(texts, f.data)
			}
		}
	}
	for i, text := range texts {
		var s depthScanner
		if line := s.scan([]byte(text)); line != 0 {
			t.Errorf("config %d refused at line %d", i, line)
		}
		var raw map[string]any
		if _, err := toml.Decode(text, &raw); err == nil && treeDepth(raw) > 2*s.deepest {
			t.Errorf("config %d: tree %d deep, measured %d", i, treeDepth(raw), s.deepest)
		}
	}
}

// A file over MaxFileBytes is refused by name, whether it is a regular
// file, text in memory, or a device that never ends.
func TestFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	data := []byte("# padding\n" + strings.Repeat("#", MaxFileBytes))
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "the file is larger than 4 MiB, the most a config may be"
	for name, load := range map[string]func() error{
		"file":      func() error { _, err := Load(big); return err },
		"memory":    func() error { _, err := Parse(big, data); return err },
		"/dev/zero": func() error { _, err := Load("/dev/zero"); return err },
	} {
		err := load()
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) != 1 {
			t.Errorf("%s: got %v, want one problem", name, err)
			continue
		}
		if p := ce.Problems[0]; p.Msg != want || (p.File != big && p.File != "/dev/zero") {
			t.Errorf("%s: got %s", name, p)
		}
	}
	// One byte under the cap is read and parsed.
	if _, err := Parse("ok.toml", data[:MaxFileBytes]); err != nil && strings.Contains(err.Error(), want) {
		t.Errorf("a file at the cap refused: %v", err)
	}
}

// Within the depth cap, many keys deep down, or long keys deep down, cost
// the parser as much as a bomb; the totals of key parts and key path bytes
// are capped too.
func TestKeyTotalsCapped(t *testing.T) {
	long := strings.Repeat("k", 1000)
	for _, c := range []struct {
		name, record, want string
	}{
		{"parts", "x%d = " + strings.Repeat("{b=", 61) + "1" + strings.Repeat("}", 61) + "\n",
			"more than 1000000 key parts in all (a key counts once for each table it is in)"},
		{"bytes", "x%d = " + strings.Repeat("{"+long+"=", 61) + "1" + strings.Repeat("}", 61) + "\n",
			`the keys' full paths ("a.b.c") add up to more than 8 MiB`},
	} {
		var b strings.Builder
		for i := 0; b.Len() < MaxFileBytes/2; i++ {
			fmt.Fprintf(&b, c.record, i)
		}
		p := checkBounds("f.toml", []byte(b.String()))
		if p == nil || p.Msg != c.want || p.Line < 2 {
			t.Errorf("%s: got %v, want %q on a later line", c.name, p, c.want)
		}
	}
}

// The scan allocates nothing for a file it lets through.
func TestNestingScanAllocatesNothing(t *testing.T) {
	b, err := os.ReadFile("../../examples/kong-migration.toml")
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(10, func() { checkBounds("f", b) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
