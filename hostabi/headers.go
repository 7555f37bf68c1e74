package hostabi

import (
	"context"
	"strings"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// pairsMap serves the header maps that live in the host for the length of
// one callback: an http_call reply, gRPC metadata.
type pairsMap struct{ p *[][2]string }

func (m pairsMap) Len() int           { return len(*m.p) }
func (m pairsMap) Pairs() [][2]string { return *m.p }
func (m pairsMap) Get(k string) (string, bool) {
	for _, kv := range *m.p {
		if strings.EqualFold(kv[0], k) {
			return kv[1], true
		}
	}
	return "", false
}
func (m pairsMap) Add(k, v string) { *m.p = append(*m.p, [2]string{k, v}) }
func (m pairsMap) Set(k, v string) { m.Remove(k); m.Add(k, v) }
func (m pairsMap) Remove(k string) {
	out := (*m.p)[:0]
	for _, kv := range *m.p {
		if !strings.EqualFold(kv[0], k) {
			out = append(out, kv)
		}
	}
	*m.p = out
}
func (m pairsMap) SetPairs(p [][2]string) { *m.p = p }

// headerMap finds a map for the effective context, nil when it does not
// exist there (e.g. request headers asked for from a root context).
func (in *instance) headerMap(t abi.MapType) HeaderMap {
	switch t {
	case abi.MapHTTPCallResponseHeaders:
		if in.cur.httpHeaders != nil {
			return pairsMap{&in.cur.httpHeaders}
		}
		return nil
	case abi.MapHTTPCallResponseTrailers:
		if in.cur.httpHeaders != nil {
			return pairsMap{&in.cur.httpTrailers}
		}
		return nil
	case abi.MapGRPCInitialMetadata, abi.MapGRPCTrailingMetadata:
		// Metadata is passed to the callbacks through the http_call reply.
		if in.cur.httpHeaders == nil {
			return nil
		}
		if t == abi.MapGRPCInitialMetadata {
			return pairsMap{&in.cur.httpHeaders}
		}
		return pairsMap{&in.cur.httpTrailers}
	}
	s := in.stream()
	if s == nil || t > abi.MapHTTPResponseTrailers {
		return nil
	}
	return s.host.Headers(t)
}

func hcGetHeaderMapPairs(ctx context.Context, in *instance, a []uint64) abi.Status {
	// A map that does not exist reads as empty, as in Envoy.
	var pairs [][2]string
	if m := in.headerMap(abi.MapType(a[0])); m != nil {
		pairs = m.Pairs()
	}
	return in.returnBytes(ctx, serializePairs(pairs), u32(a[1]), u32(a[2]))
}

func hcSetHeaderMapPairs(_ context.Context, in *instance, a []uint64) abi.Status {
	b, err := read(in.mem, u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	pairs, err := deserializePairs(b)
	if err != nil {
		return abi.SerializationFailure
	}
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		return abi.BadArgument
	}
	m.SetPairs(pairs)
	return abi.OK
}

func hcGetHeaderMapSize(_ context.Context, in *instance, a []uint64) abi.Status {
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		return abi.BadArgument
	}
	// Envoy answers HeaderMap::byteSize(): the bytes of keys and values.
	n := 0
	for _, kv := range m.Pairs() {
		n += len(kv[0]) + len(kv[1])
	}
	if err := putU32(in.mem, u32(a[1]), uint32(n)); err != nil {
		return abi.InvalidMemoryAccess
	}
	return abi.OK
}

func hcGetHeaderMapValue(ctx context.Context, in *instance, a []uint64) abi.Status {
	key, err := read(in.mem, u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		// Envoy: the map is not available in this context.
		return abi.BadArgument
	}
	v, ok := m.Get(string(key))
	if !ok && in.vm.version != abi.Version010 {
		// 0.2.0 made a missing key NotFound; 0.1.0 answered Ok and "".
		return abi.NotFound
	}
	return in.returnBytes(ctx, []byte(v), u32(a[3]), u32(a[4]))
}

func (in *instance) keyValue(a []uint64) (HeaderMap, string, string, abi.Status) {
	key, err := readString(in.mem, u32(a[1]), u32(a[2]))
	if err != nil {
		return nil, "", "", abi.InvalidMemoryAccess
	}
	val, err := readString(in.mem, u32(a[3]), u32(a[4]))
	if err != nil {
		return nil, "", "", abi.InvalidMemoryAccess
	}
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		return nil, "", "", abi.BadArgument
	}
	return m, key, val, abi.OK
}

func hcAddHeaderMapValue(_ context.Context, in *instance, a []uint64) abi.Status {
	m, k, v, st := in.keyValue(a)
	if st == abi.OK {
		m.Add(k, v)
	}
	return st
}

func hcReplaceHeaderMapValue(_ context.Context, in *instance, a []uint64) abi.Status {
	m, k, v, st := in.keyValue(a)
	if st == abi.OK {
		m.Set(k, v)
	}
	return st
}

// hcRemoveHeaderMapValue is Ok for an absent key, as Envoy.
func hcRemoveHeaderMapValue(_ context.Context, in *instance, a []uint64) abi.Status {
	key, err := readString(in.mem, u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		return abi.BadArgument
	}
	m.Remove(key)
	return abi.OK
}
