package wasmfilter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/runtime/filter"
	"github.com/sluice-proxy/sluice/runtime/stream"
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
// values comma-joined; the pseudo-headers first in the order given, then
// the fields by name.
func headerProp(h *stream.HeaderMap, pseudo ...string) []byte {
	var out [][2]string
	for _, k := range pseudo {
		v, _ := h.Get(k)
		out = append(out, [2]string{k, string(v)})
	}
	joined := map[string]int{}
	start := len(out)
	for name, value := range h.All() {
		if len(name) > 0 && name[0] == ':' {
			continue
		}
		if i, ok := joined[string(name)]; ok {
			out[i][1] += "," + string(value)
			continue
		}
		joined[string(name)] = len(out)
		out = append(out, [2]string{string(name), string(value)})
	}
	sort.Slice(out[start:], func(i, j int) bool { return out[start+i][0] < out[start+j][0] })
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

// headerSize is the bytes of a map's regular fields' names and values.
func headerSize(h *stream.HeaderMap) int64 {
	if h == nil {
		return 0
	}
	var n int64
	for name, value := range h.All() {
		if len(name) > 0 && name[0] != ':' {
			n += int64(len(name) + len(value))
		}
	}
	return n
}

// get is a field's first value as a string.
func get(h *stream.HeaderMap, name string) string {
	if h == nil {
		return ""
	}
	v, _ := h.Get(name)
	return string(v)
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

func (h *wasmStreamHost) Property(path []string) ([]byte, bool) {
	info := h.s.Info()
	key := strings.Join(path, ".")
	if v, ok := info.FilterState[key]; ok {
		return v, true
	}
	req := h.s.RequestHeaders()
	resp := h.s.ResponseHeaders()
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
		return []byte(get(req, stream.Path)), true
	case "request.url_path":
		return []byte(urlPath(get(req, stream.Path))), true
	case "request.host":
		return []byte(get(req, stream.Authority)), true
	case "request.scheme":
		return []byte(get(req, stream.Scheme)), true
	case "request.method":
		return []byte(get(req, stream.Method)), true
	case "request.headers":
		return headerProp(req, stream.Authority, stream.Method, stream.Path, stream.Scheme), true
	case "request.headers_bytes":
		return propInt(headerSize(req)), true
	case "request.referer":
		v := get(req, "referer")
		return []byte(v), v != ""
	case "request.useragent":
		v := get(req, "user-agent")
		return []byte(v), v != ""
	case "request.time":
		return propInt(info.Start.UnixNano()), !info.Start.IsZero()
	case "request.id":
		if len(info.RequestIDBytes) > 0 {
			return bytes.Clone(info.RequestIDBytes), true
		}
		if info.RequestID != "" {
			return []byte(info.RequestID), true
		}
		id := get(req, "x-request-id")
		return []byte(id), id != ""
	case "request.protocol":
		return []byte(info.Protocol), info.Protocol != ""
	case "request.query":
		p := get(req, stream.Path)
		if i := strings.IndexByte(p, '?'); i >= 0 {
			return []byte(p[i+1:]), true
		}
		return []byte{}, true
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
		return propInt(max(info.RequestSize, 0) + headerSize(req)), true
	case "response.code":
		if resp == nil {
			return nil, false
		}
		return propInt(int64(filter.ResponseStatus(h.s))), true
	case "response.code_details":
		return []byte(info.ResponseDetails), info.ResponseDetails != ""
	case "response.flags":
		return propInt(0), resp != nil
	case "response.grpc_status":
		if resp == nil {
			return nil, false
		}
		s := get(h.s.ResponseTrailers(), "grpc-status")
		if s == "" {
			s = get(resp, "grpc-status")
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return propInt(n), err == nil
	case "response.headers":
		if resp == nil {
			return nil, false
		}
		return headerProp(resp, stream.Status), true
	case "response.headers_bytes":
		if resp == nil {
			return nil, false
		}
		return propInt(headerSize(resp)), true
	case "response.trailers":
		if resp == nil {
			return nil, false
		}
		tr := h.s.ResponseTrailers()
		if tr == nil {
			tr = &stream.HeaderMap{}
		}
		return headerProp(tr), true
	case "response.size":
		return propInt(info.ResponseSize), resp != nil
	case "response.total_size":
		if resp == nil {
			return nil, false
		}
		return propInt(info.ResponseSize + headerSize(resp)), true
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
func (h *wasmStreamHost) SetProperty(path []string, value []byte) error {
	info := h.s.Info()
	if info.FilterState == nil {
		info.FilterState = map[string][]byte{}
	}
	info.FilterState[ownedKey(path)] = value
	return nil
}

// ownedKey is path's dotted key for SetProperty to keep: the segments
// are hostabi's own copies (hostabi.StreamHost), so a path of one
// segment, as filters mostly set, is its key without a copy.
func ownedKey(path []string) string {
	return strings.Join(path, ".")
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

// urlPath is request.url_path: the path without its query, decoded.
func urlPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if u, err := url.PathUnescape(p); err == nil {
		return u
	}
	return p
}
