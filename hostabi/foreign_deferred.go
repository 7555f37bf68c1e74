package hostabi

import (
	"encoding/binary"
	"sync"

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
	if s.deferred == nil {
		s.deferred = deferredBufs.Get().(*[]byte)
	}
	kept := *s.deferred
	// What is kept is never longer than the arguments it came from.
	if len(kept)+len(args) > maxDeferredBytes {
		return nil, abi.ResultMismatch
	}
	out, ok := appendDeferred(kept, args)
	if !ok {
		return nil, abi.SerializationFailure
	}
	*s.deferred = out
	return nil, abi.OK
}

// deferredBufs holds the buffers of streams whose edits have been
// applied: a stream that defers allocates none once the proxy is warm.
var deferredBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendDeferred decodes the runs of args (with the pairs reader the
// header hostcalls use) and appends each edit to kept as the host keeps
// it: an op byte, the key's and the value's u32 lengths, the key and the
// value. False when some run does not decode; kept's bytes are then
// unchanged (the caller keeps its old length).
func appendDeferred(kept, args []byte) ([]byte, bool) {
	for b := args; len(b) > 0; {
		if len(b) < 8 {
			return kept, false
		}
		op := binary.LittleEndian.Uint32(b)
		if op != deferAdd && op != deferReplace {
			return kept, false
		}
		r, err := newPairsReader(b[4:])
		if err != nil {
			return kept, false
		}
		for k, v, ok := r.next(); ok; k, v, ok = r.next() {
			kept = append(kept, byte(op))
			kept = binary.LittleEndian.AppendUint32(kept, uint32(len(k)))
			kept = binary.LittleEndian.AppendUint32(kept, uint32(len(v)))
			kept = append(append(kept, k...), v...)
		}
		// The run ends where its last pair does (a count of 0: after
		// the count).
		b = b[4+r.off:]
	}
	return kept, true
}

// applyDeferred applies the stream's deferred edits to its response
// headers, at its response-headers callback, in order, and closes
// deferring for the stream. Callers hold mu.
func (s *HTTPStream) applyDeferred() {
	s.deferClosed = true
	if s.deferred == nil {
		return
	}
	if m := s.host.Headers(ResponseHeaders); m != nil {
		for b := *s.deferred; len(b) > 0; {
			kl := int(binary.LittleEndian.Uint32(b[1:]))
			vl := int(binary.LittleEndian.Uint32(b[5:]))
			k, v := b[9:9+kl], b[9+kl:9+kl+vl]
			if b[0] == deferReplace {
				m.SetBytes(k, v)
			} else {
				m.AddBytes(k, v)
			}
			b = b[9+kl+vl:]
		}
	}
	s.dropDeferred()
}

// dropDeferred gives the stream's buffer of deferred edits back to the
// pool: once they are applied, or when the stream ends without response
// headers reaching the filter (a local reply, a reset), so that such
// streams do not leave a buffer to the collector each. Callers hold mu.
func (s *HTTPStream) dropDeferred() {
	if s.deferred == nil {
		return
	}
	*s.deferred = (*s.deferred)[:0]
	deferredBufs.Put(s.deferred)
	s.deferred = nil
}
