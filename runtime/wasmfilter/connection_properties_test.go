package wasmfilter

import (
	"crypto/tls"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

func TestTLSVersionNameIsBoringSSLs(t *testing.T) {
	for v, want := range map[uint16]string{tls.VersionTLS10: "TLSv1", tls.VersionTLS11: "TLSv1.1", tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"} {
		if got := filter.TLSVersionName(v); got != want {
			t.Errorf("TLSVersionName(%#x) = %q, want %q", v, got, want)
		}
	}
}

// ConnectionProperty's answers, by Envoy's attribute types.
func TestConnectionProperty(t *testing.T) {
	der := []byte("any bytes: the encoding does not parse them \xff\xfe")
	c := &filter.Connection{ID: 9, Source: "127.0.0.1:5555", Destination: "[::1]:443", Upstream: "10.0.0.2:8080",
		TLS:         &filter.TLSInfo{Version: "TLSv1.3", ServerName: "api", MTLS: true, PeerDNSSANs: []string{"a", "b"}, PeerCertDER: der},
		ClusterName: "api", ClusterMetadata: map[string]any{"filter_metadata": map[string]any{"acme": map[string]any{"tier": "gold", "weight": int64(2)}}}}
	i64 := func(n int64) string { return string(binary.LittleEndian.AppendUint64(nil, uint64(n))) }
	for _, tc := range []struct {
		key, want string
		found     bool
	}{
		{"source.address", "127.0.0.1:5555", true},
		{"source.port", i64(5555), true},
		{"destination.address", "[::1]:443", true},
		{"destination.port", i64(443), true},
		{"upstream.port", i64(8080), true},
		{"connection.id", i64(9), true},
		{"connection.mtls", "\x01", true},
		{"connection.tls_version", "TLSv1.3", true},
		{"connection.requested_server_name", "api", true},
		{"connection.dns_san_peer_certificate", "a", true},
		{"connection.uri_san_peer_certificate", "", false},
		{"cluster_name", "api", true},
		{"xds.cluster_name", "api", true},
		{"cluster_metadata.filter_metadata.acme.tier", "gold", true},
		{"xds.cluster_metadata.filter_metadata.acme.weight", "\x00\x00\x00\x00\x00\x00\x00\x40", true},
		{"request.path", "", false},
	} {
		got, ok := ConnectionProperty(c, tc.key, strings.Split(tc.key, "."))
		if ok != tc.found || string(got) != tc.want {
			t.Errorf("%s = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.found)
		}
	}
	pemURL, ok := ConnectionProperty(c, "connection.peer_certificate", []string{"connection", "peer_certificate"})
	if !ok || !strings.HasPrefix(string(pemURL), "-----BEGIN%20CERTIFICATE-----%0A") || !strings.HasSuffix(string(pemURL), "-----END%20CERTIFICATE-----%0A") ||
		strings.ContainsAny(string(pemURL), "\n +/=") {
		t.Errorf("connection.peer_certificate = %q, %v; want URL-encoded PEM", pemURL, ok)
	}
	plain := &filter.Connection{Source: "127.0.0.1:1"}
	if v, ok := ConnectionProperty(plain, "connection.requested_server_name", []string{"connection", "requested_server_name"}); !ok || len(v) != 0 {
		t.Errorf("requested_server_name without TLS = %q, %v; want \"\", found", v, ok)
	}
	for _, k := range []string{"connection.tls_version", "connection.peer_certificate", "upstream.address"} {
		if v, ok := ConnectionProperty(plain, k, strings.Split(k, ".")); ok {
			t.Errorf("%s without TLS or upstream = %q, found; want not found", k, v)
		}
	}
}

// TestPropertyKeys: a property set is kept under its dotted key, whether
// the filter named it as one segment or several (hostabi hands over
// segments of its own, which may be kept).
func TestPropertyKeys(t *testing.T) {
	s := newTestStream("GET", "http://example.com/")
	h := &wasmStreamHost{s: s}
	for _, path := range [][]string{{"sluice.consumer"}, {"sluice", "consumer"}} {
		clear(s.info.FilterState)
		if err := h.SetProperty(path, []byte("alice")); err != nil {
			t.Fatal(err)
		}
		if v := s.info.FilterState["sluice.consumer"]; string(v) != "alice" || len(s.info.FilterState) != 1 {
			t.Errorf("path %q: the state is %q", path, s.info.FilterState)
		}
	}
}
