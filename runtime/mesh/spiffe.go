// Package mesh is sluice's service-mesh side: workload identities as SPIFFE
// IDs in X.509 URI SANs, a small file-based CA (`sluice ca`), peer
// verification against a trust bundle that reloads from its file,
// Istio-style authorization, and the per-hop headers a sidecar owns
// (x-forwarded-client-cert, W3C traceparent).
//
// It imports only runtime/config and runtime/filter; runtime/listen,
// runtime/server and runtime/l4 call into it.
package mesh

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ID is a SPIFFE ID: spiffe://TRUST_DOMAIN/PATH.
type ID struct {
	TrustDomain string
	Path        string // with its leading "/", "" for the trust domain itself
}

// String is the URI form.
func (id ID) String() string { return "spiffe://" + id.TrustDomain + id.Path }

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id.TrustDomain == "" }

// Namespace is NS of a ".../ns/NS/sa/NAME" path, as Istio reads it for
// source.namespace; "" otherwise.
func (id ID) Namespace() string {
	// Segment by segment without splitting: it runs per inbound request.
	rest := strings.TrimPrefix(id.Path, "/")
	for rest != "" {
		seg, after, found := strings.Cut(rest, "/")
		if !found {
			return ""
		}
		if seg == "ns" {
			ns, _, _ := strings.Cut(after, "/")
			return ns
		}
		rest = after
	}
	return ""
}

// ParseID checks s against the SPIFFE ID rules that matter here: the
// spiffe scheme, a lower-case trust domain, no port, user, query or
// fragment.
func ParseID(s string) (ID, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("SPIFFE ID %q: %w", s, err)
	}
	return idFromURL(u)
}

func idFromURL(u *url.URL) (ID, error) {
	s := u.String()
	switch {
	case u.Scheme != "spiffe":
		return ID{}, fmt.Errorf("SPIFFE ID %q: scheme must be spiffe", s)
	case u.Host == "":
		return ID{}, fmt.Errorf("SPIFFE ID %q: no trust domain", s)
	case u.Port() != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return ID{}, fmt.Errorf("SPIFFE ID %q: no port, user, query or fragment allowed", s)
	case strings.ToLower(u.Host) != u.Host:
		return ID{}, fmt.Errorf("SPIFFE ID %q: trust domain must be lower case", s)
	case strings.HasSuffix(u.Path, "/"):
		return ID{}, fmt.Errorf("SPIFFE ID %q: path must not end with /", s)
	}
	return ID{TrustDomain: u.Host, Path: u.Path}, nil
}

// errNoID is returned for a certificate without a spiffe:// URI SAN.
var errNoID = errors.New("certificate has no spiffe:// URI SAN")

// IDFromCert is the certificate's SPIFFE ID: its one spiffe:// URI SAN.
// SPIFFE's X.509-SVID allows exactly one URI SAN.
func IDFromCert(c *x509.Certificate) (ID, error) {
	var found []*url.URL
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return ID{}, errNoID
	case 1:
		return idFromURL(found[0])
	}
	return ID{}, fmt.Errorf("certificate has %d spiffe:// URI SANs; an SVID has one", len(found))
}

// namespaceOf is ID.Namespace of a peer ID the TLS layer already
// verified, without parsing it again as a URL on every request.
func namespaceOf(id string) string {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return ID{Path: rest[i:]}.Namespace()
	}
	return ""
}
