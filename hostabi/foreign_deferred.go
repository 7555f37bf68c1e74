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
// (the arguments' bytes): a response's CORS and rate-limit headers take a
// few hundred, and a guest that keeps calling cannot grow the host's
// memory past this.
const maxDeferredBytes = 16 << 10

// deferredEdits is a host-internal bit of rootContext.skip, above the
// sluice_skip_callbacks mask: the plugin declared that its streams may
// defer response-header edits, so the proxy must call the stream's
// response-headers callback even when the guest skips it (see
// HTTPStream.SkippedCallbacks). In HTTPStream.skip it says the stream may
// defer.
const deferredEdits = 1 << 31

func deferResponseHeaders(in *instance, args []byte) ([]byte, abi.Status) {
	if rc := in.roots[in.effective]; rc != nil {
		if len(args) != 0 {
			return nil, abi.BadArgument
		}
		rc.skip |= deferredEdits
		return nil, abi.OK
	}
	s := in.stream()
	if s == nil || s.network || s.skip&deferredEdits == 0 || s.deferClosed {
		return nil, abi.BadArgument
	}
	if len(s.deferred)+len(args) > maxDeferredBytes {
		return nil, abi.ResultMismatch
	}
	if !eachDeferred(args, nil) {
		return nil, abi.SerializationFailure
	}
	s.deferred = append(s.deferred, args...)
	return nil, abi.OK
}

// eachDeferred decodes runs of deferred edits and, when edit is not nil,
// calls it with each pair in order; false when some run does not decode
// (checked with edit nil before any is kept).
func eachDeferred(b []byte, edit func(replace bool, k, v []byte)) bool {
	for len(b) > 0 {
		if len(b) < 8 {
			return false
		}
		op := binary.LittleEndian.Uint32(b)
		if op != deferAdd && op != deferReplace {
			return false
		}
		r, err := newPairsReader(b[4:])
		if err != nil {
			return false
		}
		for k, v, ok := r.next(); ok; k, v, ok = r.next() {
			if edit != nil {
				edit(op == deferReplace, k, v)
			}
		}
		// The run ends where its last pair does (a count of 0: after
		// the count).
		b = b[4+max(r.off, 4):]
	}
	return true
}

// applyDeferred applies the stream's deferred edits to its response
// headers, at its response-headers callback, and closes deferring for the
// stream. Callers hold mu.
func (s *HTTPStream) applyDeferred() {
	s.deferClosed = true
	if len(s.deferred) == 0 {
		return
	}
	if m := s.host.Headers(ResponseHeaders); m != nil {
		eachDeferred(s.deferred, func(replace bool, k, v []byte) {
			if replace {
				m.SetBytes(k, v)
			} else {
				m.AddBytes(k, v)
			}
		})
	}
	s.deferred = nil
}
