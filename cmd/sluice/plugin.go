package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/sluice-proxy/sluice/sdk/scaffold"
)

const sdkModule = "github.com/sluice-proxy/sluice/sdk"

const pluginInitAbout = `Writes a filter project into DIR (default ./NAME): the source, go.mod (Go)
or a Rust crate, a README, a Makefile whose default target runs the tests
and builds NAME.wasm (make run starts this sluice with it), and a
sluice.toml that loads it.

The SDK is not published yet, so the project points at a local copy: the
Go module gets a replace directive to it (and, when the SDK is in a sluice
checkout, to the checkout, for the test kit plugins/filtertest, which the
project's filter_test.go uses), the Rust Makefile builds the crate in its
rust/ folder. The SDK directory is, in order:
  --sdk DIR         (the sdk/ folder or the sluice checkout holding it)
  $SLUICE_SDK       (the same)
  the sluice checkout the running binary sits in (bin/sluice, ./sluice)
  the checkout this binary was built from, when it still exists`

type pluginInitOpts struct {
	lang, dir, module, sdk string
}

func pluginInitFlags() (*flag.FlagSet, *pluginInitOpts) {
	fs := flag.NewFlagSet("plugin init", flag.ContinueOnError)
	var o pluginInitOpts
	fs.StringVar(&o.lang, "lang", "go", "the `language`: go or rust")
	fs.StringVar(&o.dir, "dir", "", "the `directory` to write the project to (default ./NAME)")
	fs.StringVar(&o.module, "module", "", "the Go module `path` (default NAME)")
	fs.StringVar(&o.sdk, "sdk", "", "the SDK `directory` (default $SLUICE_SDK, then the checkout sluice runs from)")
	return fs, &o
}

// cmdPluginInit is `sluice plugin init`.
func cmdPluginInit(args []string, stdout, stderr io.Writer) int {
	fs, o := pluginInitFlags()
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "(sluice plugin init --help shows its flags)") }
	lang, dir, module, sdkFlag := &o.lang, &o.dir, &o.module, &o.sdk
	// NAME may come before or after the flags.
	var names []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(names) != 1 {
		fmt.Fprintf(stderr, "sluice plugin init: want one NAME, got %d\n\n%s", len(names), groupUsage("plugin"))
		return 2
	}
	name := names[0]
	if *lang != "go" && *lang != "rust" {
		fmt.Fprintf(stderr, "sluice plugin init: --lang must be go or rust, not %q\n", *lang)
		return 2
	}
	if *dir == "" {
		*dir = name
	}
	sdk, how, err := findSDK(*sdkFlag, *lang)
	if err != nil {
		fmt.Fprintf(stderr, "sluice plugin init: %v\n", err)
		return 1
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "sluice plugin init: %v\n", err)
		return 1
	}
	d := scaffold.Data{Name: name, Module: *module, SDKPath: sdk, Lang: *lang, Sluice: sluiceBinary()}
	if *lang == "go" {
		// The SDK's checkout, when it is one, gives the project the test
		// kit (plugins/filtertest) with nothing to fetch or edit.
		if kit, err := scaffold.LoadKit(filepath.Dir(sdk)); err == nil {
			d.Kit = kit
		} else {
			fmt.Fprintf(stderr, "sluice plugin init: no test kit in the project (%v): the SDK is not in a sluice checkout\n", err)
		}
	}
	written, err := scaffold.Write(abs, d)
	if err != nil {
		fmt.Fprintf(stderr, "sluice plugin init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s filter %q in %s (SDK %s, %s):\n", *lang, name, *dir, sdk, how)
	for _, p := range written {
		if rel, err := filepath.Rel(abs, p); err == nil {
			p = rel
		}
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	fmt.Fprintf(stdout, "\nNext:\n  cd %s && make     # runs the tests, builds %s.wasm\n  make run          # starts %s with sluice.toml\n", *dir, name, d.Sluice)
	return 0
}

// sluiceBinary is the path of this sluice, for the project's `make run`,
// or "sluice" (the one on PATH) when this is not a lasting sluice binary:
// a test binary, or one `go run` builds in a temporary directory.
func sluiceBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return "sluice"
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	if filepath.Base(exe) != "sluice" || strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "sluice"
	}
	return exe
}

// findSDK returns the SDK directory (holding go.mod of sdkModule and, for
// Rust, rust/src/lib.rs) and says where it came from.
func findSDK(flagValue, lang string) (dir, how string, err error) {
	check := func(d, how string) (string, string, error) {
		if sdk, ok := sdkDir(d, lang); ok {
			return sdk, how, nil
		}
		what := "the sluice SDK (" + sdkModule + ")"
		if lang == "rust" {
			what += " with its Rust crate (rust/src/lib.rs)"
		}
		return "", "", fmt.Errorf("%s: %s is not %s or a checkout holding it in sdk/", how, d, what)
	}
	if flagValue != "" {
		return check(flagValue, "--sdk")
	}
	if env := os.Getenv("SLUICE_SDK"); env != "" {
		return check(env, "$SLUICE_SDK")
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err := filepath.EvalSymlinks(exe); err == nil {
			for d := filepath.Dir(exe); ; d = filepath.Dir(d) {
				if sdk, ok := sdkDir(d, lang); ok {
					return sdk, "the checkout sluice runs from", nil
				}
				if d == filepath.Dir(d) {
					break
				}
			}
		}
	}
	// Without -trimpath the compiler records this file's absolute path:
	// cmd/sluice/plugin.go in the checkout the binary was built from.
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if sdk, ok := sdkDir(filepath.Join(filepath.Dir(file), "..", ".."), lang); ok {
			return sdk, "the checkout sluice was built from", nil
		}
	}
	return "", "", errors.New("cannot find the sluice SDK: pass --sdk DIR or set SLUICE_SDK to the sdk/ folder of a sluice checkout")
}

// sdkDir reports whether d, or d/sdk, is the SDK module, as an absolute path.
func sdkDir(d, lang string) (string, bool) {
	for _, c := range []string{d, filepath.Join(d, "sdk")} {
		abs, err := filepath.Abs(c)
		if err != nil || modulePath(filepath.Join(abs, "go.mod")) != sdkModule {
			continue
		}
		if lang == "rust" {
			if _, err := os.Stat(filepath.Join(abs, "rust", "src", "lib.rs")); err != nil {
				continue
			}
		}
		return abs, true
	}
	return "", false
}

// modulePath is the module line of a go.mod, or "".
func modulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
