package hostabi

import (
	"encoding/binary"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// sluice_add_headers and sluice_replace_headers are sluice's own foreign
// functions: several proxy_add_header_map_value (or
// proxy_replace_header_map_value) calls in one. A filter that sets five
// response headers crosses into the host once instead of five times
// (each crossing costs a Rust guest more than the edit itself). The
// argument is a little-endian u32 map type (as the hostcalls take it)
// followed by the pairs in proxy-wasm's header map serialization (what
// proxy_set_header_map_pairs takes); the pairs are applied in order,
// each exactly as the single hostcall would apply it. Statuses are the
// single hostcall's: BadArgument for a map that does not exist in the
// calling context, SerializationFailure for pairs that do not decode (the
// whole argument is checked before any pair is applied, so a bad one
// changes nothing). Other hosts answer NotFound; an SDK then makes the
// single calls.
const (
	foreignAddHeaders     = "sluice_add_headers"
	foreignReplaceHeaders = "sluice_replace_headers"
)

func addHeaders(in *instance, args []byte) ([]byte, abi.Status) {
	return nil, editHeaders(in, args, HeaderMap.AddBytes)
}

func replaceHeaders(in *instance, args []byte) ([]byte, abi.Status) {
	return nil, editHeaders(in, args, HeaderMap.SetBytes)
}

// editHeaders applies edit to each pair of args (a view of guest memory:
// the map copies what it keeps, as it does for the single hostcalls).
func editHeaders(in *instance, args []byte, edit func(HeaderMap, []byte, []byte)) abi.Status {
	if len(args) < 4 {
		return abi.BadArgument
	}
	r, err := newPairsReader(args[4:])
	if err != nil {
		return abi.SerializationFailure
	}
	m := in.headerMap(abi.MapType(binary.LittleEndian.Uint32(args)))
	if m == nil {
		return abi.BadArgument
	}
	for k, v, ok := r.next(); ok; k, v, ok = r.next() {
		edit(m, k, v)
	}
	return abi.OK
}
