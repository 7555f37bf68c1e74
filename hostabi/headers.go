package hostabi

import (
	"context"
	"strings"
	"unsafe"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// pairsMap serves the header maps that live in the host for the length of
// one callback: an http_call reply, gRPC metadata. They are rare next to a
// stream's headers, so it converts rather than keeping bytes.
type pairsMap struct{ p *[][2]string }

func (m pairsMap) Len() int { return len(*m.p) }
func (m pairsMap) At(i int) (name, value []byte) {
	kv := &(*m.p)[i]
	return stringBytes(kv[0]), stringBytes(kv[1])
}
func (m pairsMap) GetBytes(k []byte) ([]byte, bool) {
	for _, kv := range *m.p {
		if strings.EqualFold(kv[0], string(k)) {
			return stringBytes(kv[1]), true
		}
	}
	return nil, false
}
func (m pairsMap) AddBytes(k, v []byte) { *m.p = append(*m.p, [2]string{string(k), string(v)}) }
func (m pairsMap) SetBytes(k, v []byte) { m.DelBytes(k); m.AddBytes(k, v) }
func (m pairsMap) DelBytes(k []byte) {
	out := (*m.p)[:0]
	for _, kv := range *m.p {
		if !strings.EqualFold(kv[0], string(k)) {
			out = append(out, kv)
		}
	}
	clear((*m.p)[len(out):])
	*m.p = out
}
func (m pairsMap) Reset() { *m.p = (*m.p)[:0] }

// stringBytes is a read-only view of s: HeaderMap's At and GetBytes results
// are never written to.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

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
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		// A map that does not exist reads as empty, as in Envoy.
		m = pairsMap{new([][2]string)}
	}
	// Encoded straight into the guest's allocation: one allocator call,
	// no copy on the host. The map cannot change meanwhile: the
	// allocator may make no hostcall that edits it.
	buf, st := in.returnView(ctx, serializedSize(m), u32(a[1]), u32(a[2]))
	if st == abi.OK {
		putPairs(buf, m)
	}
	return st
}

func hcSetHeaderMapPairs(_ context.Context, in *instance, a []uint64) abi.Status {
	b, err := in.read(u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	// The whole map is checked before the old one is dropped.
	r, err := newPairsReader(b)
	if err != nil {
		return abi.SerializationFailure
	}
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		return abi.BadArgument
	}
	m.Reset()
	for k, v, ok := r.next(); ok; k, v, ok = r.next() {
		m.AddBytes(k, v)
	}
	return abi.OK
}

func hcGetHeaderMapSize(_ context.Context, in *instance, a []uint64) abi.Status {
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		return abi.BadArgument
	}
	// Envoy answers HeaderMap::byteSize(): the bytes of keys and values.
	n := 0
	for i := range m.Len() {
		k, v := m.At(i)
		n += len(k) + len(v)
	}
	if err := in.putU32(u32(a[1]), uint32(n)); err != nil {
		return abi.InvalidMemoryAccess
	}
	return abi.OK
}

func hcGetHeaderMapValue(ctx context.Context, in *instance, a []uint64) abi.Status {
	key, err := in.read(u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		// Envoy: the map is not available in this context.
		return abi.BadArgument
	}
	v, ok := m.GetBytes(key)
	if !ok && in.vm.version != abi.Version010 {
		// 0.2.0 made a missing key NotFound; 0.1.0 answered Ok and "".
		return abi.NotFound
	}
	return in.returnBytes(ctx, v, u32(a[3]), u32(a[4]))
}

// keyValue reads a hostcall's map, key and value; key and value are views
// of guest memory for the length of the hostcall.
func (in *instance) keyValue(a []uint64) (HeaderMap, []byte, []byte, abi.Status) {
	key, err := in.read(u32(a[1]), u32(a[2]))
	if err != nil {
		return nil, nil, nil, abi.InvalidMemoryAccess
	}
	val, err := in.read(u32(a[3]), u32(a[4]))
	if err != nil {
		return nil, nil, nil, abi.InvalidMemoryAccess
	}
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		return nil, nil, nil, abi.BadArgument
	}
	return m, key, val, abi.OK
}

func hcAddHeaderMapValue(_ context.Context, in *instance, a []uint64) abi.Status {
	m, k, v, st := in.keyValue(a)
	if st == abi.OK {
		m.AddBytes(k, v)
	}
	return st
}

func hcReplaceHeaderMapValue(_ context.Context, in *instance, a []uint64) abi.Status {
	m, k, v, st := in.keyValue(a)
	if st == abi.OK {
		m.SetBytes(k, v)
	}
	return st
}

// hcRemoveHeaderMapValue is Ok for an absent key, as Envoy.
func hcRemoveHeaderMapValue(_ context.Context, in *instance, a []uint64) abi.Status {
	key, err := in.read(u32(a[1]), u32(a[2]))
	if err != nil {
		return abi.InvalidMemoryAccess
	}
	m := in.headerMap(abi.MapType(a[0]))
	if m == nil {
		return abi.BadArgument
	}
	m.DelBytes(key)
	return abi.OK
}
