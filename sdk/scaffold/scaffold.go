// Package scaffold writes a new filter project from the templates in go/
// (a Go filter with this SDK) or rust/ (a Rust filter with the crate in
// sdk/rust): the files `sluice plugin init` creates.
package scaffold

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

//go:embed go rust
var files embed.FS

// Data fills the templates.
type Data struct {
	// Name is the filter's name: the .wasm file and the plugin's name.
	Name string
	// Module is the Go module path of the new project.
	Module string
	// SDKVersion is the SDK version required; "v0.0.0" with SDKPath.
	SDKVersion string
	// SDKPath, when set, is a local SDK checkout (the sdk/ directory) used
	// through a replace directive. A Rust project needs it: the crate is
	// SDKPath/rust.
	SDKPath string
	// Lang is "go" (the default) or "rust".
	Lang string
}

// Crate is the Rust crate name: Name with dashes as underscores.
func (d Data) Crate() string { return strings.ReplaceAll(d.Name, "-", "_") }

// Langs are the languages Write knows.
var Langs = []string{"go", "rust"}

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Write renders the Go templates into dir, which must not hold any of the
// files already; it returns the paths written.
func Write(dir string, d Data) ([]string, error) {
	if !validName.MatchString(d.Name) {
		return nil, fmt.Errorf("filter name %q: use lower-case letters, digits and dashes, starting with a letter", d.Name)
	}
	if d.Module == "" {
		d.Module = d.Name
	}
	if d.SDKVersion == "" {
		d.SDKVersion = "v0.0.0"
	}
	switch d.Lang {
	case "":
		d.Lang = "go"
	case "go":
	case "rust":
		if d.SDKPath == "" {
			return nil, fmt.Errorf("a Rust project needs SDKPath: the crate is built from SDKPath/rust")
		}
	default:
		return nil, fmt.Errorf("language %q: want one of %s", d.Lang, strings.Join(Langs, ", "))
	}
	var written []string
	err := fs.WalkDir(files, d.Lang, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		src, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		t, err := template.New(path).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return fmt.Errorf("template %s: %w", path, err)
		}
		var out bytes.Buffer
		if err := t.Execute(&out, d); err != nil {
			return fmt.Errorf("template %s: %w", path, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(path, d.Lang+"/"), ".tmpl")
		if name == "gitignore" {
			name = ".gitignore"
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if _, err := os.Stat(dst); err == nil {
			return fmt.Errorf("%s already exists; not overwriting", dst)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", dst, err)
		}
		written = append(written, dst)
		return nil
	})
	return written, err
}
