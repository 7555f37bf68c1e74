package wasmfilter

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/runtime/filter"
)

// Properties with Envoy's attribute paths and encodings: strings raw,
// integers and timestamps/durations (ns) 8-byte little endian, booleans one
// byte, maps as serialized pairs.

func propInt(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

func propDouble(v float64) []byte {
	return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))
}

func propBool(v bool) []byte {
	if v {
		return []byte{1}
	}
	return []byte{0}
}

// propPairs encodes a map as the ABI serializes header maps.
func propPairs(pairs [][2]string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(pairs)))
	for _, kv := range pairs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[0])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[1])))
	}
	for _, kv := range pairs {
		b = append(append(append(append(b, kv[0]...), 0), kv[1]...), 0)
	}
	return b
}

// headerProp is a header map as Envoy's request.headers: one pair per key,
// values comma-joined.
func headerProp(h http.Header, pseudo [][2]string) []byte {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := pseudo
	for _, k := range keys {
		out = append(out, [2]string{strings.ToLower(k), strings.Join(h[k], ",")})
	}
	return propPairs(out)
}

func hostPort(addr string) (string, int64, bool) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	n, _ := strconv.ParseInt(p, 10, 64)
	return h, n, true
}

func headerSize(h http.Header) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v))
		}
	}
	return n
}

// metadataProp walks route or cluster metadata
// (filter_metadata.NS.key) and encodes what it finds.
func metadataProp(md map[string]any, rest []string) ([]byte, bool) {
	var v any = md
	for _, seg := range rest {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return encodeValue(v)
}

func encodeValue(v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return nil, false
	case string:
		return []byte(x), true
	case []byte:
		return x, true
	case bool:
		return propBool(x), true
	// Metadata is a protobuf Struct on Envoy, whose only number is a
	// double: a number comes out as its 8 IEEE 754 bytes, integral or not.
	case int:
		return propDouble(float64(x)), true
	case int64:
		return propDouble(float64(x)), true
	case float64:
		return propDouble(x), true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var pairs [][2]string
		for _, k := range keys {
			pairs = append(pairs, [2]string{k, fmt.Sprint(x[k])})
		}
		return propPairs(pairs), true
	}
	return []byte(fmt.Sprint(v)), true
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func (h wasmStreamHost) Property(path []string) ([]byte, bool) {
	info := h.s.Info()
	key := strings.Join(path, ".")
	if v, ok := info.FilterState[key]; ok {
		return v, true
	}
	req := h.s.Request()
	resp := h.s.Response()
	switch path[0] {
	case "xds":
		// xds.route_metadata.filter_metadata... as Envoy ≥ 1.23 names them.
		if len(path) > 1 {
			return h.Property(path[1:])
		}
	case "route_metadata":
		return metadataProp(info.RouteMetadata, path[1:])
	}
	switch key {
	case "request.path":
		return []byte(req.URL.RequestURI()), true
	case "request.url_path":
		return []byte(req.URL.Path), true
	case "request.host":
		return []byte(req.Host), true
	case "request.scheme":
		v, _ := requestHeaderMap{s: h.s}.pseudo(":scheme")
		return []byte(v), true
	case "request.method":
		return []byte(req.Method), true
	case "request.headers":
		p, _ := (requestHeaderMap{s: h.s}).pseudo(":scheme")
		return headerProp(req.Header, [][2]string{{":authority", req.Host}, {":method", req.Method},
			{":path", req.URL.RequestURI()}, {":scheme", p}}), true
	case "request.headers_bytes":
		return propInt(headerSize(req.Header)), true
	case "request.referer":
		return []byte(req.Header.Get("Referer")), req.Header.Get("Referer") != ""
	case "request.useragent":
		return []byte(req.UserAgent()), req.UserAgent() != ""
	case "request.time":
		return propInt(info.Start.UnixNano()), !info.Start.IsZero()
	case "request.id":
		if info.RequestID != "" {
			return []byte(info.RequestID), true
		}
		id := req.Header.Get("X-Request-Id")
		return []byte(id), id != ""
	case "request.protocol":
		if info.Protocol != "" {
			return []byte(info.Protocol), true
		}
		return []byte(req.Proto), true
	case "request.query":
		return []byte(req.URL.RawQuery), true
	case "request.duration":
		if info.Start.IsZero() {
			return nil, false
		}
		return propInt(int64(time.Since(info.Start))), true
	case "request.size":
		// Unknown (-1: chunked, no content-length) counts what was read
		// so far on Envoy; none is counted here, so 0, never -1.
		return propInt(max(info.RequestSize, 0)), true
	case "request.total_size":
		return propInt(max(info.RequestSize, 0) + headerSize(req.Header)), true
	case "response.code":
		if resp == nil {
			return nil, false
		}
		return propInt(int64(resp.Status)), true
	case "response.code_details":
		return []byte(info.ResponseDetails), info.ResponseDetails != ""
	case "response.flags":
		return propInt(0), resp != nil
	case "response.grpc_status":
		if resp == nil {
			return nil, false
		}
		s := resp.Trailer.Get("Grpc-Status")
		if s == "" {
			s = resp.Header.Get("Grpc-Status")
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return propInt(n), err == nil
	case "response.headers":
		if resp == nil {
			return nil, false
		}
		return headerProp(resp.Header, [][2]string{{":status", strconv.Itoa(resp.Status)}}), true
	case "response.headers_bytes":
		if resp == nil {
			return nil, false
		}
		return propInt(headerSize(resp.Header)), true
	case "response.trailers":
		if resp == nil {
			return nil, false
		}
		return headerProp(resp.Trailer, nil), true
	case "response.size":
		return propInt(info.ResponseSize), resp != nil
	case "response.total_size":
		if resp == nil {
			return nil, false
		}
		return propInt(info.ResponseSize + headerSize(resp.Header)), true
	case "route_name":
		return []byte(info.RouteName), info.RouteName != ""
	}
	if info.Cluster != nil && wantsCluster(path) {
		info.Cluster.ResolveCluster(info)
	}
	return ConnectionProperty(&filter.Connection{ID: info.ConnectionID, Source: info.Source, Destination: info.Destination,
		Upstream: info.Upstream, TLS: info.TLS, ClusterName: info.ClusterName, ClusterMetadata: info.ClusterMetadata}, key, path)
}

// SetProperty stores a filter's property in the stream's FilterState,
// where later filters and the backend picker read it.
func (h wasmStreamHost) SetProperty(path []string, value []byte) error {
	info := h.s.Info()
	if info.FilterState == nil {
		info.FilterState = map[string][]byte{}
	}
	info.FilterState[strings.Join(path, ".")] = value
	return nil
}

// wantsCluster tells the properties that depend on the stream's cluster
// (cluster_name, cluster_metadata, and their xds. spellings).
func wantsCluster(path []string) bool {
	switch path[0] {
	case "cluster_name", "cluster_metadata":
		return true
	case "xds":
		return len(path) > 1 && (path[1] == "cluster_name" || path[1] == "cluster_metadata")
	}
	return false
}
