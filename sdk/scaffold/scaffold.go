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
	// Kit, when set, is the sluice checkout whose test kit
	// (plugins/filtertest) a Go project's tests use (LoadKit).
	Kit *Kit
	// Sluice is the sluice binary `make run` starts; default "sluice",
	// the one on PATH.
	Sluice string
}

// Kit is a sluice checkout as a Go project's go.mod needs it to use the
// test kit: the module is required and replaced by the checkout, with the
// checkout's own requirements and go.sum, so the project builds without
// fetching sluice (it is not published) and `go mod tidy` trims the list
// without raising the go line (it is the checkout's).
type Kit struct {
	// Root is the checkout (its go.mod is github.com/sluice-proxy/sluice).
	Root string
	// GoVersion is the checkout's go line.
	GoVersion string
	// Requires are its requirements, "path version", but for the SDK.
	Requires []string
	// GoSum is its go.sum.
	GoSum string
}

// MainModule is sluice's main module, which holds the test kit.
const MainModule = "github.com/sluice-proxy/sluice"

// LoadKit reads the checkout at root: its go.mod must be MainModule's,
// and plugins/filtertest must be there.
func LoadKit(root string) (*Kit, error) {
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	k := &Kit{Root: root}
	module := ""
	block := false
	for _, line := range strings.Split(string(mod), "\n") {
		line, _, _ = strings.Cut(line, "//")
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case block && f[0] == ")":
			block = false
		case block && len(f) == 2:
			k.require(f[0], f[1])
		case f[0] == "module" && len(f) == 2:
			module = strings.Trim(f[1], `"`)
		case f[0] == "go" && len(f) == 2:
			k.GoVersion = f[1]
		case f[0] == "require" && len(f) == 2 && f[1] == "(":
			block = true
		case f[0] == "require" && len(f) == 3:
			k.require(f[1], f[2])
		}
	}
	if module != MainModule || k.GoVersion == "" {
		return nil, fmt.Errorf("%s is not the go.mod of %s", filepath.Join(root, "go.mod"), MainModule)
	}
	if _, err := os.Stat(filepath.Join(root, "plugins", "filtertest")); err != nil {
		return nil, fmt.Errorf("%s has no test kit: %w", root, err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return nil, err
	}
	k.GoSum = string(sum)
	return k, nil
}

func (k *Kit) require(path, version string) {
	if path != MainModule+"/sdk" {
		k.Requires = append(k.Requires, path+" "+version)
	}
}

// GoVersion is the go line of a Go project: the kit's when there is one
// (a lower one would be raised by the first `go mod tidy`), else the
// SDK's.
func (d Data) GoVersion() string {
	if d.Kit != nil {
		return d.Kit.GoVersion
	}
	return "1.24"
}

// Crate is the Rust crate name: Name with dashes as underscores.
func (d Data) Crate() string { return strings.ReplaceAll(d.Name, "-", "_") }

// Langs are the languages Write knows.
var Langs = []string{"go", "rust"}

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Write renders the templates of d.Lang into dir (a template that renders
// to nothing is not written), which must not hold any of the
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
	if d.Sluice == "" {
		d.Sluice = "sluice"
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
		if strings.TrimSpace(out.String()) == "" {
			// A file only some projects get (the kit's test, go.sum).
			return nil
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
