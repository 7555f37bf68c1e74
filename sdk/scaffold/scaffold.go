// Package scaffold writes a new filter project from the templates in go/:
// the files `sluice plugin init` creates.
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

//go:embed go
var files embed.FS

// Data fills the templates.
type Data struct {
	// Name is the filter's name: the .wasm file and the plugin's name.
	Name string
	// Module is the Go module path of the new project.
	Module string
	// SDKVersion is the SDK version required; "v0.0.0" with SDKPath.
	SDKVersion string
	// SDKPath, when set, is a local SDK checkout used through a replace
	// directive.
	SDKPath string
}

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
	var written []string
	err := fs.WalkDir(files, "go", func(path string, e fs.DirEntry, err error) error {
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
		name := strings.TrimSuffix(strings.TrimPrefix(path, "go/"), ".tmpl")
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
