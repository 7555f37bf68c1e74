package proxywasm

import (
	"strings"

	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// Property values are raw bytes whose encoding depends on the attribute, as
// Envoy defines them: strings as is, integers and timestamps as 8-byte
// little-endian, booleans as one byte, maps in the header-map format.

// GetPropertyString reads a string property.
func GetPropertyString(path ...string) (string, error) {
	b, err := GetProperty(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// GetPropertyInt64 reads an integer property (8-byte little-endian).
func GetPropertyInt64(path ...string) (int64, error) {
	u, err := GetPropertyUint64(path...)
	return int64(u), err
}

// GetPropertyUint64 reads an unsigned integer property.
func GetPropertyUint64(path ...string) (uint64, error) {
	b, err := GetProperty(path)
	if err != nil {
		return 0, err
	}
	return DecodeUint64(b)
}

// DecodeUint64 decodes an 8-byte little-endian property value.
func DecodeUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, types.ErrorStatusSerializationFailure
	}
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// EncodeUint64 encodes v as an 8-byte little-endian property value.
func EncodeUint64(v uint64) []byte {
	b := make([]byte, 8)
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// GetPropertyBool reads a boolean property (one byte, or "true"/"false" as
// some hosts send).
func GetPropertyBool(path ...string) (bool, error) {
	b, err := GetProperty(path)
	if err != nil {
		return false, err
	}
	switch {
	case len(b) == 1:
		return b[0] != 0, nil
	case string(b) == "true":
		return true, nil
	case string(b) == "false":
		return false, nil
	}
	return false, types.ErrorStatusSerializationFailure
}

// GetPropertyMap reads a map property such as request.headers.
func GetPropertyMap(path ...string) ([][2]string, error) {
	b, err := GetProperty(path)
	if err != nil {
		return nil, err
	}
	return DeserializeMap(b), nil
}

// Typed helpers for the attributes filters read most (Envoy names).

// GetPluginRootID is the root_id the plugin was configured with ("" if none).
func GetPluginRootID() (string, error) { return GetPropertyString("plugin_root_id") }

// GetPluginName is the plugin's configured name.
func GetPluginName() (string, error) { return GetPropertyString("plugin_name") }

// GetPluginVMID is the plugin's vm_id.
func GetPluginVMID() (string, error) { return GetPropertyString("plugin_vm_id") }

func GetRequestPath() (string, error)     { return GetPropertyString("request", "path") }
func GetRequestURLPath() (string, error)  { return GetPropertyString("request", "url_path") }
func GetRequestHost() (string, error)     { return GetPropertyString("request", "host") }
func GetRequestMethod() (string, error)   { return GetPropertyString("request", "method") }
func GetRequestScheme() (string, error)   { return GetPropertyString("request", "scheme") }
func GetRequestProtocol() (string, error) { return GetPropertyString("request", "protocol") }
func GetRequestID() (string, error)       { return GetPropertyString("request", "id") }
func GetRequestQuery() (string, error)    { return GetPropertyString("request", "query") }

// GetRequestTimeNanoseconds is when the first byte of the request arrived.
func GetRequestTimeNanoseconds() (int64, error) { return GetPropertyInt64("request", "time") }

// GetResponseCode is the response status (valid from response headers on).
func GetResponseCode() (int64, error) { return GetPropertyInt64("response", "code") }

// GetSourceAddress is the downstream peer as "ip:port".
func GetSourceAddress() (string, error) { return GetPropertyString("source", "address") }

// GetSourceIP is GetSourceAddress without the port (brackets of IPv6 removed).
func GetSourceIP() (string, error) {
	a, err := GetSourceAddress()
	if err != nil {
		return "", err
	}
	return HostOnly(a), nil
}

func GetSourcePort() (int64, error)          { return GetPropertyInt64("source", "port") }
func GetDestinationAddress() (string, error) { return GetPropertyString("destination", "address") }
func GetDestinationPort() (int64, error)     { return GetPropertyInt64("destination", "port") }
func GetConnectionID() (uint64, error)       { return GetPropertyUint64("connection", "id") }
func GetConnectionMTLS() (bool, error)       { return GetPropertyBool("connection", "mtls") }
func GetUpstreamAddress() (string, error)    { return GetPropertyString("upstream", "address") }
func GetClusterName() (string, error)        { return GetPropertyString("xds", "cluster_name") }
func GetRouteName() (string, error)          { return GetPropertyString("xds", "route_name") }

// GetPeerPrincipal is the first URI SAN of the peer certificate (the SPIFFE
// ID under mTLS).
func GetPeerPrincipal() (string, error) {
	return GetPropertyString("connection", "uri_san_peer_certificate")
}

// HostOnly strips the port from "host:port", "[v6]:port" or returns addr
// unchanged when it has no port.
func HostOnly(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if i := strings.IndexByte(addr, ']'); i > 0 {
			return addr[1:i]
		}
		return addr
	}
	if strings.Count(addr, ":") == 1 {
		return addr[:strings.IndexByte(addr, ':')]
	}
	return addr
}
