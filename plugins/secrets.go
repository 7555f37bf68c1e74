package plugins

import "slices"

// Secret is a place in a built-in plugin's configuration that holds a
// secret, which the admin API's /config must not show. The declaration is
// Go's, beside the module, so it outlives the plugins' source language;
// TestSecretsDocumented keeps it in step with README.md, and
// TestSecretsAccepted with the keys the module really takes.
type Secret struct {
	// Path is a key path in the configuration: key names joined by ".",
	// "[]" after a name for every element of that array, "*" for every
	// member of a table ("keys[].key", "request_headers.*").
	Path string
	// Part says which part of the value found there is secret.
	Part SecretPart
}

// SecretPart is which part of a value is secret.
type SecretPart int

const (
	// WholeValue: the value itself (a string, or whatever is there).
	WholeValue SecretPart = iota
	// JWKPrivate: a JWK Set or JWK; only the private and symmetric key
	// members (RFC 7518: d, p, q, dp, dq, qi, oth, and an oct key's k),
	// so the public keys stay readable.
	JWKPrivate
	// ValueAfterColon: a list of "name:value" strings; each value, so the
	// names still say what the filter does.
	ValueAfterColon
)

// transformValues are request-transformer's "name:value" lists whose
// values go upstream: a header or parameter a transformer adds is how a
// gateway hands the upstream its credential (Authorization, api_key).
// response-transformer's values go to every client and are not secret.
var transformValues = func() []Secret {
	var out []Secret
	for _, op := range []string{"add", "append", "replace"} {
		for _, list := range []string{"headers", "querystring", "body"} {
			out = append(out, Secret{Path: op + "." + list + "[]", Part: ValueAfterColon})
		}
	}
	return out
}()

// secrets lists, per built-in, where its configuration holds secrets.
var secrets = map[string][]Secret{
	// Request headers may carry a credential for the upstream; response
	// headers go to every client.
	"add-header": {{Path: "request_headers.*"}},
	"key-auth":   {{Path: "keys[].key"}},
	"jwt": {
		{Path: "credentials[].secret"},
		{Path: "jwks", Part: JWKPrivate},
	},
	// Kong's Redis settings, accepted and ignored: still a password.
	"rate-limiting": {
		{Path: "redis_password"},
		{Path: "redis.password"},
		{Path: "redis.sentinel_password"},
	},
	"response-ratelimiting": {
		{Path: "redis_password"},
		{Path: "redis.password"},
		{Path: "redis.sentinel_password"},
	},
	"request-transformer": transformValues,
}

// Secrets returns where the built-in plugin name's configuration holds
// secrets; nil for one that holds none or is not a built-in.
func Secrets(name string) []Secret { return slices.Clone(secrets[name]) }
