package proxywasm

import (
	"encoding/binary"
	"unsafe"

	"github.com/sluice-proxy/sluice/sdk/internal/defaults"
	"github.com/sluice-proxy/sluice/sdk/proxywasm/types"
)

// skipDefaults is set by SkipDefaultCallbacks.
var skipDefaults bool

// SkipDefaultCallbacks lets sluice stop calling the HTTP callbacks a
// plugin leaves at DefaultHttpContext's no-op methods: each call into a Go
// guest costs microseconds, and a filter that only adds a request header
// is called for response headers, body and log too. Call it from main or
// init.
//
// The SDK learns per plugin which callbacks reach the defaults and tells
// the host through the foreign function sluice_skip_callbacks (other
// hosts answer NotFound; nothing changes there). It is safe only if the
// plugin's contexts never call an embedded DefaultHttpContext method
// themselves (a fall-through like `return s.DefaultHttpContext.
// OnHttpResponseHeaders(n, eos)` would be taken for a default). If a
// plugin's HTTP contexts turn out to be of more than one type, every
// callback is restored for it.
func SkipDefaultCallbacks() { skipDefaults = true }

// typeWord is the first word of an interface value: its type, which is
// all sameType compares.
func typeWord(h types.HttpContext) uintptr { return *(*uintptr)(unsafe.Pointer(&h)) }

// sameType notes the type of a new HTTP context; a second type stops the
// learning and restores every callback.
func (r *rootState) sameType(t uintptr) {
	switch {
	case r.httpType == 0:
		r.httpType = t
	case r.httpType != t && !r.mixed:
		r.mixed = true
		if r.skip != 0 {
			r.skip, r.untold = 0, false
			tellSkip(0)
		}
	}
}

// learn takes the defaults that ran in the callback just made; what they
// add to the plugin's mask is told to the host when the stream ends.
func (r *rootState) learn() {
	ran := defaults.Ran
	if ran == 0 {
		return
	}
	defaults.Ran = 0
	// Request headers are always called: every stream starts with them,
	// which is where a context of another type is seen.
	ran &^= defaults.RequestHeaders
	if !skipDefaults || r.mixed || r.skip|ran == r.skip {
		return
	}
	r.skip |= ran
	r.untold = true
}

// flush tells the host the mask learnt during the stream that ends.
func (r *rootState) flush() {
	if r.untold {
		r.untold = false
		tellSkip(r.skip)
	}
}

// tellSkip tells the host; a variable so native tests can watch it.
var tellSkip = tellHostSkip

func tellHostSkip(mask uint32) {
	var arg [4]byte
	binary.LittleEndian.PutUint32(arg[:], mask)
	_, _ = CallForeignFunction("sluice_skip_callbacks", arg[:])
}
