package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// asBuild is the AssemblyScript filter, built once per source version.
type asBuild struct {
	wasm     string
	versions string // "@solo-io/proxy-runtime 0.1.8, assemblyscript 0.14.13"
}

// networkError tells an unreachable registry from a broken build.
func networkError(out string) bool {
	for _, s := range []string{"ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "network", "getaddrinfo"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// buildAssemblyScript installs the pinned SDK and compiler with `npm ci`
// into a cache directory keyed by the sources, and builds
// build/optimized.wasm with the command the SDK's README gives. skip is
// set when npm or the registry is unavailable.
func buildAssemblyScript() (b asBuild, skip string, err error) {
	src, _ := filepath.Abs("assemblyscript")
	files := []string{"package.json", "package-lock.json", filepath.Join("assembly", "index.ts")}
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return b, "", err
		}
		h.Write([]byte(f))
		h.Write(data)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sluice-conformance", "assemblyscript-"+hex.EncodeToString(h.Sum(nil)[:6]))
	b.wasm = filepath.Join(dir, "build", "optimized.wasm")
	if _, err := os.Stat(b.wasm); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			return b, "npm is not installed", nil
		}
		for _, f := range files {
			data, _ := os.ReadFile(filepath.Join(src, f))
			must2(os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755))
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
				return b, "", err
			}
		}
		run := func(limit time.Duration, name string, args ...string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Dir = dir
			cmd.WaitDelay = 5 * time.Second
			cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := run(4*time.Minute, "npm", "ci", "--no-audit", "--no-fund"); err != nil {
			if networkError(out) {
				return b, "npm registry unreachable: " + lastLines(out, 2), nil
			}
			return b, "", fmt.Errorf("npm ci: %v: %s", err, lastLines(out, 4))
		}
		if out, err := run(3*time.Minute, "npx", "--no-install", "asc", "assembly/index.ts", "-b", "build/optimized.wasm",
			"--use", "abort=abort_proc_exit", "--optimize"); err != nil {
			return b, "", fmt.Errorf("asc: %v: %s", err, lastLines(out, 6))
		}
	}
	var vs []string
	for _, pkg := range []string{"@solo-io/proxy-runtime", "assemblyscript"} {
		var pj struct {
			Version string `json:"version"`
		}
		data, _ := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
		json.Unmarshal(data, &pj)
		vs = append(vs, pkg+" "+pj.Version)
	}
	b.versions = strings.Join(vs, ", ")
	return b, "", nil
}

func must2(err error) {
	if err != nil {
		panic(err)
	}
}

func TestAssemblyScriptSDK(t *testing.T) {
	report.Suite(SuiteAS, "A filter written with the AssemblyScript proxy-wasm SDK from npm (conformance/assemblyscript: package.json pins `@solo-io/proxy-runtime` 0.1.8 and `assemblyscript` 0.14.13, package-lock.json the rest), installed with `npm ci` and built with the SDK README's command `npx asc assembly/index.ts -b build/optimized.wasm --use abort=abort_proc_exit --optimize`, then loaded into a real sluice from the file. The SDK picks its root context by the plugin_root_id property, so each plugin sets root_id.")
	b, skip, err := buildAssemblyScript()
	switch {
	case err != nil:
		record(t, SuiteAS, Row{Case: "install and build with npm", Note: err.Error()})
		return
	case skip != "":
		record(t, SuiteAS, Row{Case: "install and build with npm", Skipped: true, Note: skip})
		return
	}
	st, _ := os.Stat(b.wasm)
	record(t, SuiteAS, Row{Case: "install and build with npm", Pass: true, Note: fmt.Sprintf("%s; optimized.wasm %d bytes", b.versions, st.Size())})

	up := startUpstream(t)
	asPlugin := func(name, rootID, cfg, extra string) string {
		return fmt.Sprintf(`
[[plugins]]
name = %q
wasm = %q
root_id = %q
config_raw = %q
%s
`, name, b.wasm, rootID, cfg, extra)
	}
	cfgWith := func(plugins, route string) string {
		return abiConfig(up, "127.0.0.1:1", plugins, route)
	}
	cases := []struct {
		name, ref string
		plugins   string
		route     string
		startErr  string
		run       func(e *abiEnv) error
	}{
		{
			name:    "README example (root_id add_header): every response gets hello: <configuration>",
			ref:     "@solo-io/proxy-runtime README.md (Hello, World)",
			plugins: asPlugin("hello", "add_header", "what ever you want", ""), route: `["hello"]`,
			run: func(e *abiEnv) error {
				r, err := e.get("/as")
				if err := ok200(r, err); err != nil {
					return err
				}
				if r.header.Get("Hello") != "what ever you want" || r.header.Get("X-Upstream") != "yes" {
					return fmt.Errorf("response headers %v", r.header)
				}
				return nil
			},
		},
		{
			name:    "README example with an empty configuration: hello: world!",
			ref:     "@solo-io/proxy-runtime README.md (Hello, World)",
			plugins: asPlugin("hello", "add_header", "", ""), route: `["hello"]`,
			run: func(e *abiEnv) error {
				r, err := e.get("/as")
				if err := ok200(r, err); err != nil {
					return err
				}
				if r.header.Get("Hello") != "world!" {
					return fmt.Errorf("hello: %q, want world!", r.header.Get("Hello"))
				}
				return nil
			},
		},
		{
			name:    "request and response headers, header reads and log lines through the SDK",
			ref:     "@solo-io/proxy-runtime assembly/runtime.ts (stream_context.headers, log)",
			plugins: asPlugin("asc", "as_conformance", "on", ""), route: `["asc"]`,
			run: func(e *abiEnv) error {
				r, err := e.get("/as-path")
				u, err := upstreamSaw(r, err)
				if err != nil {
					return err
				}
				if strings.Join(u.Header["X-As-Root-Id"], ",") != "as_conformance" || r.header.Get("X-As-Response") != "yes" {
					return fmt.Errorf("upstream saw x-as-root-id %v; client saw x-as-response %q", u.Header["X-As-Root-Id"], r.header.Get("X-As-Response"))
				}
				return e.wantLogs("asc", "as_conformance request /as-path")
			},
		},
		{
			name:    "send_local_response through the SDK: 403 with its body, upstream not called",
			ref:     "@solo-io/proxy-runtime assembly/runtime.ts (send_local_response)",
			plugins: asPlugin("asc", "as_conformance", "on", ""), route: `["asc"]`,
			run: func(e *abiEnv) error {
				r, err := e.get("/as-deny", "x-as-deny", "1")
				if err != nil {
					return err
				}
				if r.status != 403 || r.body != "denied by assemblyscript\n" || r.header.Get("X-Upstream") != "" {
					return fmt.Errorf("status %d body %q headers %v", r.status, r.body, r.header)
				}
				return nil
			},
		},
		{
			name: "one module, two plugins with one vm_id: each root_id gets its own root context in the shared VM",
			ref:  "envoy api envoy/extensions/wasm/v3/wasm.proto (vm_id, root_id)",
			plugins: asPlugin("hello", "add_header", "shared-vm", `vm_id = "as"`) +
				asPlugin("asc", "as_conformance", "on", `vm_id = "as"`),
			route: `["asc", "hello"]`,
			run: func(e *abiEnv) error {
				r, err := e.get("/as-both")
				if err := ok200(r, err); err != nil {
					return err
				}
				if r.header.Get("Hello") != "shared-vm" || r.header.Get("X-As-Response") != "yes" {
					return fmt.Errorf("response headers %v", r.header)
				}
				return nil
			},
		},
		{
			name:    "a root_id the module did not register is refused at start (the SDK aborts in proxy_on_context_create)",
			ref:     "@solo-io/proxy-runtime assembly/runtime.ts (Missing root context factory)",
			plugins: asPlugin("wrong", "no_such_root", "", ""), route: `["wrong"]`,
			startErr: `"wrong"`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row := Row{Case: c.name, Ref: c.ref}
			err := func() error {
				s, err := trySluice(t, cfgWith(c.plugins, c.route))
				if c.startErr != "" {
					if err == nil {
						return fmt.Errorf("sluice started; want the plugin refused")
					}
					if !strings.Contains(err.Error(), c.startErr) {
						return fmt.Errorf("refused with %q, want it to name %s", err, c.startErr)
					}
					return nil
				}
				if err != nil {
					return fmt.Errorf("starting sluice: %w", err)
				}
				return c.run(&abiEnv{t: t, s: s, base: "http://" + s.ListenerAddr("l"), up: up})
			}()
			row.Pass = err == nil
			if err != nil {
				row.Note = err.Error()
			}
			record(t, SuiteAS, row)
		})
	}
}

var _ = io.EOF
