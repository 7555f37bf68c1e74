package plugins

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// jwkPrivateMembers are RFC 7518's private and symmetric JWK members.
var jwkPrivateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

type secretsFile struct {
	Plugins []struct {
		Name   string
		Wasm   string
		Config map[string]any
	}
}

func loadSecretsFile(t *testing.T) secretsFile {
	t.Helper()
	var f secretsFile
	if _, err := toml.DecodeFile("testdata/secrets.toml", &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// Every secret of testdata/secrets.toml sits at a declared place, and
// every declared place holds one of them. The file's configurations are
// ones the modules take (realhost.TestSecretsAccepted), so the declared
// keys are real: unknown keys are refused.
func TestSecretsDeclared(t *testing.T) {
	f := loadSecretsFile(t)
	seen := map[string]bool{}
	for _, p := range f.Plugins {
		builtin := strings.TrimPrefix(p.Wasm, "builtin:")
		seen[builtin] = true
		declared := Secrets(builtin)
		used := make([]bool, len(declared))
		for _, leaf := range leaves(p.Config, nil) {
			if !strings.Contains(leaf.value, "s3cr3t") {
				continue
			}
			i := slices.IndexFunc(declared, func(s Secret) bool { return covers(s, leaf) })
			if i < 0 {
				t.Errorf("%s: %s = %q is not declared secret", builtin, strings.Join(leaf.path, "."), leaf.value)
				continue
			}
			used[i] = true
		}
		for i, s := range declared {
			if !used[i] {
				t.Errorf("%s: declared secret %s is not in testdata/secrets.toml", builtin, s.Path)
			}
		}
	}
	for name := range secrets {
		if !seen[name] {
			t.Errorf("testdata/secrets.toml does not configure %s", name)
		}
		if !Has(name) {
			t.Errorf("secrets declared for %s, which is not a built-in", name)
		}
	}
}

type leaf struct {
	path  []string // names, and "[]" for an array element
	value string
}

func leaves(v any, path []string) []leaf {
	var out []leaf
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			out = append(out, leaves(e, append(slices.Clone(path), k))...)
		}
	case []map[string]any:
		for _, e := range x {
			out = append(out, leaves(e, append(slices.Clone(path), "[]"))...)
		}
	case []any:
		for _, e := range x {
			out = append(out, leaves(e, append(slices.Clone(path), "[]"))...)
		}
	default:
		out = append(out, leaf{path, fmt.Sprint(v)})
	}
	return out
}

// covers reports whether the declared secret s hides the leaf's secret.
func covers(s Secret, l leaf) bool {
	var pat []string
	for _, seg := range strings.Split(s.Path, ".") {
		name, each := strings.CutSuffix(seg, "[]")
		pat = append(pat, name)
		if each {
			pat = append(pat, "[]")
		}
	}
	if len(l.path) < len(pat) {
		return false
	}
	for i, p := range pat {
		if p != "*" && p != l.path[i] {
			return false
		}
	}
	rest := l.path[len(pat):]
	switch s.Part {
	case ValueAfterColon:
		name, value, ok := strings.Cut(l.value, ":")
		return len(rest) == 0 && ok && !strings.Contains(name, "s3cr3t") && strings.Contains(value, "s3cr3t")
	case JWKPrivate:
		// {keys = [ {..., d = "..."} ]} or a lone JWK.
		if len(rest) >= 2 && rest[0] == "keys" && rest[1] == "[]" {
			rest = rest[2:]
		}
		return len(rest) > 0 && slices.Contains(jwkPrivateMembers, rest[0])
	}
	return true
}

// The declaration names keys README.md documents for each plugin, and
// every documented key whose name says it holds a secret is declared.
func TestSecretsDocumented(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	parts := regexp.MustCompile(`(?m)^## `).Split(string(b), -1)
	for _, p := range parts[1:] {
		title, body, _ := strings.Cut(p, "\n")
		sections[strings.Trim(strings.TrimSpace(title), "`")] = body
	}
	backticked := regexp.MustCompile("`([^`]+)`")
	row := regexp.MustCompile("(?m)^\\| ([^|]+) \\| ([^|]+) \\|")
	for _, name := range names {
		body, ok := sections[name]
		if !ok {
			t.Errorf("README.md has no section for %s", name)
			continue
		}
		var documented []string
		for _, m := range backticked.FindAllStringSubmatch(body, -1) {
			documented = append(documented, m[1])
		}
		isDocumented := func(key string) bool {
			for _, d := range documented {
				if d == key || strings.HasSuffix(d, "*") && strings.HasPrefix(key, strings.TrimSuffix(d, "*")) {
					return true
				}
			}
			return false
		}
		declared := Secrets(name)
		for _, s := range declared {
			first, _, _ := strings.Cut(s.Path, ".")
			first = strings.TrimSuffix(first, "[]")
			if !isDocumented(first) {
				t.Errorf("%s: secret %s: README.md's section does not document %q", name, s.Path, first)
			}
		}
		// Table rows: | `key` | default | meaning |. A key named like a
		// secret (and not a flag, whose default is true or false) or
		// holding credentials must be declared.
		secretName := regexp.MustCompile(`password|secret|token|^keys$|^credentials$|^jwks$`)
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			if strings.Contains(m[2], "true") || strings.Contains(m[2], "false") {
				continue
			}
			for _, k := range backticked.FindAllStringSubmatch(m[1], -1) {
				key := k[1]
				if !secretName.MatchString(key) {
					continue
				}
				if !slices.ContainsFunc(declared, func(s Secret) bool {
					first, _, _ := strings.Cut(s.Path, ".")
					return strings.TrimSuffix(first, "[]") == key
				}) {
					t.Errorf("%s: README.md documents %q, which holds a secret, but secrets.go does not declare it", name, key)
				}
			}
		}
	}
}
