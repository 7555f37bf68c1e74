package mesh

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"sync"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// connTLS holds what one downstream TLS connection says about itself and
// its peer. A connection's certificates do not change once it is
// handshaken, so the facts (the peer's subject formatted, its SANs, the
// SHA-256 of its certificate) are worked out for its first request and
// shared by every later one: on a peer's multiplexed HTTP/2 connection
// that is thousands of requests.
type connTLS struct {
	once sync.Once
	info *filter.TLSInfo
}

type connTLSKey struct{}

// WithConnTLS gives a downstream connection's context the place where
// ConnTLSInfo keeps its facts; listeners call it from http.Server's
// ConnContext.
func WithConnTLS(ctx context.Context) context.Context {
	return context.WithValue(ctx, connTLSKey{}, &connTLS{})
}

// ConnTLSInfo describes the TLS connection a request came on (cs is its
// Request.TLS). With a context from WithConnTLS the answer is computed once
// per connection and shared: callers must treat it as read-only. Without
// one it is computed for this call.
func ConnTLSInfo(ctx context.Context, cs *tls.ConnectionState) *filter.TLSInfo {
	c, _ := ctx.Value(connTLSKey{}).(*connTLS)
	if c == nil {
		return TLSInfo(cs)
	}
	c.once.Do(func() { c.info = TLSInfo(cs) })
	return c.info
}

// TLSInfo describes a TLS connection for properties, headers and logs.
func TLSInfo(cs *tls.ConnectionState) *filter.TLSInfo {
	ti := &filter.TLSInfo{
		Version:    filter.TLSVersionName(cs.Version),
		ServerName: cs.ServerName,
		MTLS:       len(cs.PeerCertificates) > 0,
	}
	if len(cs.PeerCertificates) > 0 {
		c := cs.PeerCertificates[0]
		ti.PeerSubject = c.Subject.String()
		ti.PeerDNSSANs = c.DNSNames
		for _, u := range c.URIs {
			ti.PeerURISANs = append(ti.PeerURISANs, u.String())
		}
		sum := sha256.Sum256(c.Raw)
		ti.PeerCertSHA256 = hex.EncodeToString(sum[:])
		ti.PeerCertDER = c.Raw
	}
	return ti
}
