package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
)

// Redacted replaces secret values in the JSON dump.
const Redacted = "[redacted]"

// JSON is the effective config for the admin /config page: defaults and
// mode presets applied. Secrets are left out: the Redis password by its
// json:"-" tag, and values in plugin config tables whose key names a
// secret (password, secret, token, credential, private_key, api_key).
func (c *Config) JSON() ([]byte, error) {
	cp := *c
	cp.Plugins = nil
	for _, p := range c.Plugins {
		p.Config = redact(p.Config)
		p.VMConfig = redact(p.VMConfig)
		cp.Plugins = append(cp.Plugins, p)
	}
	b, err := json.MarshalIndent(&cp, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding config as JSON: %w", err)
	}
	return b, nil
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

// redact returns a copy of m with secret values replaced, recursing into
// tables and arrays; m itself, shared with the running config, is untouched.
func redact(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		if isSecretKey(k) {
			out[k] = Redacted
			continue
		}
		out[k] = redactValue(v)
	}
	return out
}

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return redact(x)
	case []map[string]any:
		out := make([]map[string]any, len(x))
		for i := range x {
			out[i] = redact(x[i])
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = redactValue(x[i])
		}
		return out
	}
	return v
}
