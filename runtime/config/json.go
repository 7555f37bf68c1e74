package config

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/plugins"
)

// Redacted replaces secret values in the JSON dump.
const Redacted = "[redacted]"

// JSON is the effective config for the admin /config page: defaults and
// mode presets applied, secrets left out:
//
//   - the Redis password, by its json:"-" tag;
//   - in a built-in plugin's config, the places its declaration names
//     (plugins.Secrets: key-auth's keys, jwt's secrets, request headers
//     added for the upstream, ...), so that what sits around them (a
//     credential's consumer and public key) stays readable;
//   - in any other free-form table (a user plugin's config and vm_config,
//     route and cluster metadata), and under a built-in's other keys,
//     values whose key names a secret
//     (password, secret, token, credential, private_key, api_key): sluice
//     cannot know a user filter's schema, so it goes by the names, as
//     Kong and Istio redact the fields they know;
//   - everywhere in those tables, a JWK's private members (d, p, q, dp,
//     dq, qi, oth, and an oct key's k);
//   - config_raw and vm_config_raw, whose format sluice does not know,
//     shown only as their length and SHA-256, enough to tell which
//     version is loaded.
//
// Paths (certificates, keys, .wasm files) are shown; key material never is,
// since the config holds none.
func (c *Config) JSON() ([]byte, error) {
	cp := *c
	cp.Plugins = slices.Clone(c.Plugins)
	for i := range cp.Plugins {
		p := &cp.Plugins[i]
		if name, ok := strings.CutPrefix(p.Wasm, "builtin:"); ok {
			p.Config = redactDeclared(p.Config, plugins.Secrets(name))
		} else {
			p.Config = redactByName(p.Config)
		}
		p.VMConfig = redactByName(p.VMConfig)
		p.ConfigRaw = digest(p.ConfigRaw)
		p.VMConfigRaw = digest(p.VMConfigRaw)
	}
	cp.Routes = slices.Clone(c.Routes)
	for i := range cp.Routes {
		cp.Routes[i].Metadata = redactByName(cp.Routes[i].Metadata)
	}
	cp.Clusters = slices.Clone(c.Clusters)
	for i := range cp.Clusters {
		cp.Clusters[i].Metadata = redactByName(cp.Clusters[i].Metadata)
	}
	b, err := json.MarshalIndent(&cp, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding config as JSON: %w", err)
	}
	return b, nil
}

// digest stands in for raw bytes: their length and SHA-256.
func digest(raw string) string {
	if raw == "" {
		return ""
	}
	return fmt.Sprintf("%s %d bytes, sha256:%x", Redacted, len(raw), sha256.Sum256([]byte(raw)))
}

var secretWords = []string{"password", "secret", "token", "credential", "private_key", "api_key", "apikey"}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// jwkPrivate are the members of a JWK that hold private or symmetric key
// material (RFC 7518 section 6: RSA's d, p, q, dp, dq, qi and oth; EC's
// and OKP's d; an oct key's k).
var jwkPrivate = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// redactByName returns a copy of m with secret values replaced (by key
// name, and JWK private members), recursing into tables and arrays; m
// itself, shared with the running config, is untouched.
func redactByName(m map[string]any) map[string]any {
	return walk(m, func(k string) bool { return isSecretKey(k) })
}

// redactDeclared returns a copy of a built-in's config m with the declared
// secrets replaced; keys outside the declared ones are also judged by
// name, as a user plugin's are, in case a new key escaped the declaration.
func redactDeclared(m map[string]any, secrets []plugins.Secret) map[string]any {
	if m == nil {
		return nil
	}
	declared := map[string]bool{}
	for _, s := range secrets {
		first, _, _ := strings.Cut(s.Path, ".")
		declared[strings.TrimSuffix(first, "[]")] = true
	}
	out := walk(m, func(k string) bool { return !declared[k] && isSecretKey(k) })
	for _, s := range secrets {
		if r, ok := redactAt(out, strings.Split(s.Path, "."), s.Part).(map[string]any); ok {
			out = r
		}
	}
	return out
}

// walk copies a free-form table, replacing the values of keys secret says
// are secret, and a JWK's private members (a table with a "kty").
func walk(m map[string]any, secret func(key string) bool) map[string]any {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	_, jwk := m["kty"]
	for k, v := range out {
		if secret(k) || jwk && slices.Contains(jwkPrivate, k) {
			out[k] = Redacted
			continue
		}
		out[k] = walkValue(v, secret)
	}
	return out
}

func walkValue(v any, secret func(string) bool) any {
	switch x := v.(type) {
	case map[string]any:
		return walk(x, secret)
	case []map[string]any:
		out := make([]map[string]any, len(x))
		for i := range x {
			out[i] = walk(x[i], secret)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = walkValue(x[i], secret)
		}
		return out
	}
	return v
}

// redactAt returns v with the values at path (a plugins.Secret path, split
// at its dots) replaced as part says. v is a copy already made by walk, so
// it is changed in place.
func redactAt(v any, path []string, part plugins.SecretPart) any {
	if len(path) == 0 {
		return redactPart(v, part)
	}
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil
		}
		// Not the table the plugin takes (it would refuse it), so where
		// the secret sits in it is unknown: hide it all.
		return Redacted
	}
	if path[0] == "*" {
		for k, x := range m {
			m[k] = redactAt(x, path[1:], part)
		}
		return m
	}
	name, each := strings.CutSuffix(path[0], "[]")
	x, ok := m[name]
	if !ok {
		return m
	}
	if !each {
		m[name] = redactAt(x, path[1:], part)
		return m
	}
	switch xs := x.(type) {
	case []any:
		for i := range xs {
			xs[i] = redactAt(xs[i], path[1:], part)
		}
	case []map[string]any:
		out := make([]any, len(xs))
		for i := range xs {
			out[i] = redactAt(xs[i], path[1:], part)
		}
		m[name] = out
	default:
		// Not the list the plugin takes (it would refuse it): hide it all.
		m[name] = Redacted
	}
	return m
}

func redactPart(v any, part plugins.SecretPart) any {
	switch part {
	case plugins.JWKPrivate:
		switch x := v.(type) {
		case map[string]any:
			return redactJWKs(x)
		case nil:
			return nil
		}
	case plugins.ValueAfterColon:
		if s, ok := v.(string); ok {
			if name, _, ok := strings.Cut(s, ":"); ok {
				return name + ":" + Redacted
			}
		}
	}
	return Redacted
}

// redactJWKs hides the private members of a JWK Set's keys, or of a JWK;
// walk has already done so where a key has its "kty", this also where it
// has none.
func redactJWKs(m map[string]any) map[string]any {
	for _, k := range jwkPrivate {
		if _, ok := m[k]; ok {
			m[k] = Redacted
		}
	}
	switch keys := m["keys"].(type) {
	case []any:
		for i, k := range keys {
			if km, ok := k.(map[string]any); ok {
				keys[i] = redactJWKs(km)
			} else {
				keys[i] = Redacted
			}
		}
	case []map[string]any:
		for i := range keys {
			keys[i] = redactJWKs(keys[i])
		}
	case nil:
	default:
		m["keys"] = Redacted
	}
	return m
}
