package mesh

import (
	"strings"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// XFCCHeader is Envoy's x-forwarded-client-cert.
const XFCCHeader = "X-Forwarded-Client-Cert"

// XFCC is the header value Envoy sets on a sidecar's inbound side
// (forward_client_cert_details SANITIZE_SET with the URI and hash): By is
// this workload's SPIFFE ID, Hash the hex SHA-256 of the peer's DER
// certificate, URI the peer's SPIFFE ID. Values holding ',', ';', '=' or
// '"' are quoted as Envoy does.
func XFCC(by, hash, uri string) string {
	var b strings.Builder
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(xfccQuote(v))
	}
	add("By", by)
	add("Hash", hash)
	add("URI", uri)
	return b.String()
}

func xfccQuote(v string) string {
	if !strings.ContainsAny(v, ",;=\"") {
		return v
	}
	return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
}

// PeerID is the SPIFFE ID of the stream's mTLS peer ("" when the
// connection is plain or the peer has none).
func PeerID(info *filter.Info) string {
	if info == nil || info.TLS == nil || !info.TLS.MTLS {
		return ""
	}
	for _, u := range info.TLS.PeerURISANs {
		if strings.HasPrefix(u, "spiffe://") {
			return u
		}
	}
	return ""
}
