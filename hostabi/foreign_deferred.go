package hostabi

import (
	"encoding/binary"

	"github.com/sluice-proxy/sluice/hostabi/internal/abi"
)

// sluice_defer_response_headers is sluice's own foreign function for a
// filter that decides its response headers at request time (CORS's
// Access-Control-Allow-*, rate limiting's X-RateLimit-*): it hands them
// over then, and the host applies them where the filter's
// proxy_on_response_headers would have run, so the filter can skip that
// callback (sluice_skip_callbacks bit 3) and its stream enters the guest
// once instead of twice.
//
// From a root context, with an empty argument, it declares that the
// plugin's streams may defer edits (Ok): from then on the host is called
// at every new stream's response headers even when the guest skips them.
// This is also how an SDK probes for the function: other hosts answer
// NotFound, and the filter then edits in its response-headers callback as
// before (and must not skip it).
//
// From a stream context of a plugin that declared before the stream
// began, and before the stream's response headers have reached the
// filter, the argument is one or more runs, each a little-endian u32 op
// (deferAdd: as proxy_add_header_map_value; deferReplace: as
// proxy_replace_header_map_value) followed by pairs in proxy-wasm's header
// map serialization, counted form (a u32 count, 0 for none). The host
// keeps the edits on the stream context and applies them in the order
// given, each exactly as the single hostcall would, to the response
// headers at the filter's place in the response chain (filters in
// reverse order), before the guest's own callback when it runs. A reply
// sent locally (by a later filter or the host) does not run the response
// chain, so deferred edits are not applied to it, as the filter's
// callback is not called for it either.
//
// Statuses: BadArgument from a root context with a non-empty argument, or
// from a stream context that cannot defer (its plugin had not declared
// when the stream began, or the response headers have passed the
// filter); SerializationFailure for a run that does not decode (an
// unknown op, pairs cut short); ResultMismatch when the stream context's
// deferred bytes would pass maxDeferredBytes. On any error nothing of the
// call is kept and the stream goes on as before.
const foreignDeferResponseHeaders = "sluice_defer_response_headers"

// The ops of a run of deferred edits.
const (
	deferAdd     = 0
	deferReplace = 1
)

// maxDeferredBytes bounds the deferred edits one stream context keeps
// (their keys and values, 9 bytes more each): a response's CORS and
// rate-limit headers take a few hundred, and a guest that keeps calling
// cannot grow the host's memory past this.
const maxDeferredBytes = 16 << 10

// deferredEdits is a host-internal bit of rootContext.skip, above the
// sluice_skip_callbacks mask: the plugin declared that its streams may
// defer response-header edits, so the proxy must call the stream's
// response-headers callback even when the guest skips it (see
// HTTPStream.SkippedCallbacks). In HTTPStream.skip it says the stream may
// defer.
const deferredEdits = 1 << 31

func deferResponseHeaders(in *instance, args []byte) ([]byte, abi.Status) {
	s := in.stream()
	if s == nil {
		rc := in.roots[in.effective]
		if rc == nil || len(args) != 0 {
			return nil, abi.BadArgument
		}
		rc.skip |= deferredEdits
		return nil, abi.OK
	}
	if s.network || s.skip&deferredEdits == 0 || s.deferClosed {
		return nil, abi.BadArgument
	}
	// The bound is on what the edits take as kept, their keys and values
	// and 9 bytes each, which the argument's length bounds from above.
	if s.deferredSize+len(args) > maxDeferredBytes {
		return nil, abi.ResultMismatch
	}
	size, ok := checkDeferred(args)
	if !ok {
		return nil, abi.SerializationFailure
	}
	if s.deferred == nil {
		// Kept by Reset for the stream that reuses s (wasmfilter pools
		// its filters): allocated once.
		s.deferred = make([]byte, 0, max(512, len(args)))
	}
	s.deferred = append(s.deferred, args...)
	s.deferredSize += size
	return nil, abi.OK
}

// checkDeferred checks that args is a sequence of runs that decode (an
// op, then pairs in the counted form). The host keeps the runs as they
// came, to walk them once more when it applies them: one copy of the
// argument, where decoding each pair into a form of its own cost a
// slice operation per field. size is what the edits count against
// maxDeferredBytes: 9 bytes, the key and the value each.
func checkDeferred(args []byte) (size int, ok bool) {
	for b := args; len(b) > 0; {
		if len(b) < 8 {
			return 0, false
		}
		if op := binary.LittleEndian.Uint32(b); op != deferAdd && op != deferReplace {
			return 0, false
		}
		n, end, ok := pairsLen(b[4:])
		if !ok {
			return 0, false
		}
		// end is 4 + 10 bytes a pair + the keys and values.
		size += end - 4 - n
		b = b[4+end:]
	}
	return size, true
}

// applyDeferred applies the stream's deferred edits to its response
// headers, at its response-headers callback, in order, and closes
// deferring for the stream. Callers hold mu.
func (s *HTTPStream) applyDeferred() {
	s.deferClosed = true
	if len(s.deferred) == 0 {
		return
	}
	if m := s.host.Headers(ResponseHeaders); m != nil {
		// checkDeferred has checked every run: an op (0 or 1, so its
		// first byte says which), a count, the lengths, then each key
		// and value with its NUL.
		for b := s.deferred; len(b) > 0; {
			replace := b[0] == deferReplace
			n := int(binary.LittleEndian.Uint32(b[4:]))
			off := 8 + 8*n
			for i := 8; i < 8+8*n; i += 8 {
				kl := int(binary.LittleEndian.Uint32(b[i:]))
				vl := int(binary.LittleEndian.Uint32(b[i+4:]))
				k := b[off : off+kl]
				v := b[off+kl+1 : off+kl+1+vl]
				off += kl + 1 + vl + 1
				if replace {
					m.SetBytes(k, v)
				} else {
					m.AddBytes(k, v)
				}
			}
			b = b[off:]
		}
	}
	s.dropDeferred()
}

// dropDeferred forgets the stream's deferred edits (keeping their
// buffer): once they are applied, or when the stream ends without its
// response headers reaching the filter (a local reply, a reset).
// Callers hold mu.
func (s *HTTPStream) dropDeferred() {
	s.deferred = s.deferred[:0]
	s.deferredSize = 0
}
