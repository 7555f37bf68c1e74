package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"math/rand/v2"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// newRequestID returns a random UUIDv4 string for x-request-id. It needs to
// be unique, not secret, so the fast per-goroutine generator serves.
func newRequestID() string {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// tlsInfo describes a downstream TLS connection for properties and logs.
func tlsInfo(cs *tls.ConnectionState) *filter.TLSInfo {
	ti := &filter.TLSInfo{
		Version:    tls.VersionName(cs.Version),
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
	}
	return ti
}
