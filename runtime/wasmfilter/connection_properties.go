package wasmfilter

import (
	"encoding/pem"
	"strings"
	"unsafe"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// view is s's bytes without a copy: a property's answer is only read
// (hostabi copies it into the guest; hostabi.StreamHost), and the
// addresses are read on every request of a limiter or an IP filter.
func view(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// ConnectionProperty answers a connection-level attribute (dotted key as
// joined from the path; path for the metadata walks) with Envoy's types.
func ConnectionProperty(c *filter.Connection, key string, path []string) ([]byte, bool) {
	switch path[0] {
	case "xds":
		// xds.cluster_name, xds.cluster_metadata... as Envoy >= 1.23 names them.
		if len(path) > 1 && (path[1] == "cluster_name" || path[1] == "cluster_metadata" || path[1] == "listener_name") {
			return ConnectionProperty(c, key[len("xds."):], path[1:])
		}
		return nil, false
	case "cluster_metadata":
		return metadataProp(c.ClusterMetadata, path[1:])
	}
	var tlsInfo filter.TLSInfo
	if c.TLS != nil {
		tlsInfo = *c.TLS
	}
	switch key {
	case "source.address":
		return view(c.Source), c.Source != ""
	case "source.port":
		_, p, ok := hostPort(c.Source)
		return propInt(p), ok
	case "destination.address":
		return view(c.Destination), c.Destination != ""
	case "destination.port":
		_, p, ok := hostPort(c.Destination)
		return propInt(p), ok
	case "upstream.address":
		return view(c.Upstream), c.Upstream != ""
	case "upstream.port":
		_, p, ok := hostPort(c.Upstream)
		return propInt(p), ok
	case "connection.id":
		return propInt(int64(c.ID)), true
	case "connection.mtls":
		return propBool(tlsInfo.MTLS), true
	case "connection.requested_server_name":
		// Envoy answers it on every connection, "" without SNI.
		return []byte(tlsInfo.ServerName), true
	case "connection.tls_version":
		return []byte(tlsInfo.Version), c.TLS != nil
	case "connection.subject_local_certificate":
		return []byte(tlsInfo.LocalSubject), tlsInfo.LocalSubject != ""
	case "connection.subject_peer_certificate":
		return []byte(tlsInfo.PeerSubject), tlsInfo.PeerSubject != ""
	case "connection.uri_san_local_certificate":
		return []byte(first(tlsInfo.LocalURISANs)), len(tlsInfo.LocalURISANs) > 0
	case "connection.uri_san_peer_certificate":
		return []byte(first(tlsInfo.PeerURISANs)), len(tlsInfo.PeerURISANs) > 0
	case "connection.dns_san_local_certificate":
		return []byte(first(tlsInfo.LocalDNSSANs)), len(tlsInfo.LocalDNSSANs) > 0
	case "connection.dns_san_peer_certificate":
		return []byte(first(tlsInfo.PeerDNSSANs)), len(tlsInfo.PeerDNSSANs) > 0
	case "connection.sha256_peer_certificate_digest":
		return []byte(tlsInfo.PeerCertSHA256), tlsInfo.PeerCertSHA256 != ""
	case "connection.peer_certificate":
		if tlsInfo.PeerCertDER == nil {
			return nil, false
		}
		return []byte(urlEncodedPEM(tlsInfo.PeerCertDER)), true
	case "listener_name":
		return []byte(c.ListenerName), c.ListenerName != ""
	case "cluster_name":
		return []byte(c.ClusterName), c.ClusterName != ""
	}
	return nil, false
}

// pemEscaper percent-encodes what a PEM block holds beyond URL-safe
// characters, as Envoy encodes connection.peer_certificate.
var pemEscaper = strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D")

// urlEncodedPEM is a certificate as Envoy's connection.peer_certificate:
// PEM, URL-encoded. Made when asked: few filters read it.
func urlEncodedPEM(der []byte) string {
	return pemEscaper.Replace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}
