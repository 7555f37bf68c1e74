// Package pluginsource reads a plugin's `wasm` key (with its `sha256` and
// `pull_policy`) into a Source: a built-in, a file, an OCI reference or an
// HTTPS URL. It only parses, so the config checks it without importing
// what fetches (runtime/wasmsource, and its registry client).
package pluginsource

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Kind is where a module comes from.
type Kind string

const (
	Builtin Kind = "builtin" // builtin:NAME, the embedded module
	File    Kind = "file"    // a path, or file:///abs/path
	OCI     Kind = "oci"     // oci://registry/repo:tag or @sha256:...
	HTTPS   Kind = "https"   // https://... with a required sha256
)

// PullPolicy says when a remote module is fetched again, as Istio's
// WasmPlugin imagePullPolicy.
type PullPolicy string

const (
	// IfNotPresent uses the cached module when there is one.
	IfNotPresent PullPolicy = "IfNotPresent"
	// Always fetches again on every load (config reload, plugin reload)
	// and keeps the cached one serving until the fetch succeeds.
	Always PullPolicy = "Always"
)

// Source is a parsed `wasm` key with its `sha256` and `pull_policy`.
type Source struct {
	// URL is the key as configured.
	URL  string
	Kind Kind
	// Path is the file of a File source.
	Path string
	// Ref is an OCI source's reference without the scheme.
	Ref string
	// SHA256 is the digest the source must have (lowercase hex): the
	// module's for File and HTTPS, the image manifest's for OCI (from
	// @sha256: in the reference or the sha256 key, which must agree).
	SHA256 string
	Policy PullPolicy
}

// Remote reports whether the module is fetched over the network.
func (s Source) Remote() bool { return s.Kind == OCI || s.Kind == HTTPS }

// Parse reads a plugin's wasm, sha256 and pull_policy keys. The errors are
// meant to follow the key's name in a config problem.
func Parse(wasm, sha256, policy string) (Source, error) {
	s := Source{URL: wasm}
	if sha256 != "" {
		d, err := parseDigest(sha256)
		if err != nil {
			return s, err
		}
		s.SHA256 = d
	}
	switch PullPolicy(policy) {
	case "", IfNotPresent, Always:
		s.Policy = PullPolicy(policy)
	default:
		return s, fmt.Errorf("unknown pull_policy %q; want \"IfNotPresent\" or \"Always\"", policy)
	}
	scheme, rest, hasScheme := strings.Cut(wasm, "://")
	switch {
	case strings.HasPrefix(wasm, "builtin:"):
		s.Kind = Builtin
	case !hasScheme:
		s.Kind, s.Path = File, wasm
	case scheme == "file":
		u, err := url.Parse(wasm)
		if err != nil || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return s, fmt.Errorf("%q: a file URL names an absolute path, as in file:///srv/filter.wasm", wasm)
		}
		s.Kind, s.Path = File, u.Path
	case scheme == "https":
		u, err := url.Parse(wasm)
		if err != nil || u.Host == "" {
			return s, fmt.Errorf("%q is not a URL", wasm)
		}
		if s.SHA256 == "" {
			return s, fmt.Errorf("%q: an https source needs sha256 (the module's SHA-256, 64 hex digits) beside it", wasm)
		}
		s.Kind = HTTPS
	case scheme == "oci":
		ref, err := name.ParseReference(rest)
		if err != nil {
			return s, fmt.Errorf("%q: %v", wasm, err)
		}
		s.Kind, s.Ref = OCI, rest
		switch r := ref.(type) {
		case name.Digest:
			d := strings.TrimPrefix(r.DigestStr(), "sha256:")
			if s.SHA256 != "" && s.SHA256 != d {
				return s, fmt.Errorf("%q: sha256 %s does not match the reference's digest", wasm, s.SHA256)
			}
			s.SHA256 = d
		case name.Tag:
			// As Istio: an unset policy on :latest (or no tag) means Always.
			if s.Policy == "" && r.TagStr() == "latest" {
				s.Policy = Always
			}
		}
	case scheme == "http":
		return s, fmt.Errorf("%q: plain http is not a plugin source; use https:// with sha256, or oci:// (a plain-HTTP registry goes in [wasm] insecure_registries)", wasm)
	default:
		return s, fmt.Errorf("%q: unknown scheme %q; want a path, file://, oci://, https:// or builtin:NAME", wasm, scheme)
	}
	if s.Policy == "" {
		s.Policy = IfNotPresent
	}
	return s, nil
}

func parseDigest(d string) (string, error) {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) != 64 {
		return "", fmt.Errorf("sha256 %q: want 64 hex digits", d)
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("sha256 %q: want 64 lowercase hex digits", d)
	}
	return h, nil
}
