package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden sections of testdata/*.txtar")

// archive is a txtar file: a comment, then "-- name --" sections. A tiny
// parser here saves a dependency on x/tools for twenty lines.
type archive struct {
	comment string
	files   []archiveFile
}

type archiveFile struct {
	name string
	data string
}

func parseArchive(data string) archive {
	var a archive
	cur := -1
	for _, line := range strings.SplitAfter(data, "\n") {
		trimmed := strings.TrimRight(line, "\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) > 6 {
			a.files = append(a.files, archiveFile{name: strings.TrimSpace(trimmed[3 : len(trimmed)-3])})
			cur++
			continue
		}
		if cur < 0 {
			a.comment += line
		} else {
			a.files[cur].data += line
		}
	}
	return a
}

func (a archive) format() string {
	var b strings.Builder
	b.WriteString(a.comment)
	for _, f := range a.files {
		b.WriteString("-- " + f.name + " --\n")
		b.WriteString(f.data)
	}
	return b.String()
}

// TestGolden loads testdata/NAME.txtar's sluice.toml (with the other
// sections written beside it) and compares the result with its "error"
// section (the exact text `sluice validate` prints) or its "json" section
// (the effective config). A comment line "mode: M" loads with --mode M.
func TestGolden(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/xdg-cache")
	t.Setenv("SLUICE_WASM_CACHE", "") // the Makefile sets it; the goldens show the XDG default
	paths, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			a := parseArchive(string(data))
			dir := t.TempDir()
			want, wantName := "", ""
			for _, f := range a.files {
				switch f.name {
				case "error", "json":
					want, wantName = f.data, f.name
					continue
				}
				p := filepath.Join(dir, f.name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if wantName == "" {
				t.Fatal("archive has neither an error nor a json section")
			}
			mode := ""
			for _, line := range strings.Split(a.comment, "\n") {
				if m, ok := strings.CutPrefix(line, "mode: "); ok {
					mode = strings.TrimSpace(m)
				}
			}
			c, err := LoadWithMode(filepath.Join(dir, "sluice.toml"), mode)
			got, gotName := "", ""
			if err != nil {
				var ce *Error
				if !errors.As(err, &ce) {
					t.Fatalf("error is %T, want *config.Error: %v", err, err)
				}
				got, gotName = err.Error()+"\n", "error"
			} else {
				for i := range c.Plugins {
					// GOMAXPROCS varies by machine; the golden says 0.
					if c.Plugins[i].VM.Instances == runtime.GOMAXPROCS(0) {
						c.Plugins[i].VM.Instances = 0
					}
				}
				b, err := c.JSON()
				if err != nil {
					t.Fatal(err)
				}
				got, gotName = string(b)+"\n", "json"
			}
			got = strings.ReplaceAll(got, dir+string(filepath.Separator), "")
			got = strings.ReplaceAll(got, dir, "$DIR")
			if *update {
				for i := range a.files {
					if a.files[i].name == wantName {
						a.files[i] = archiveFile{name: gotName, data: got}
					}
				}
				if err := os.WriteFile(path, []byte(a.format()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if gotName != wantName || !bytes.Equal([]byte(got), []byte(want)) {
				t.Errorf("got %s:\n%s\nwant %s:\n%s", gotName, got, wantName, want)
			}
		})
	}
}
