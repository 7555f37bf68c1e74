package http1

import (
	"testing"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// The short common paths (ParseRequest's, parseResponse's) are held to
// their long way by tests that parse heads near a common one both ways.
// These are what those tests share.

// nearHeads calls check with head, every cut of it, and every change of
// one of its bytes to each of swaps.
func nearHeads(head string, swaps []byte, check func(string)) {
	check(head)
	for i := range len(head) {
		check(head[:i])
		for _, c := range swaps {
			b := []byte(head)
			b[i] = c
			check(string(b))
		}
	}
}

// sameFields fails t when two parses of head left different fields: a
// name, a value or a field's checked mark.
func sameFields(t *testing.T, head string, fast, slow *stream.HeaderMap) {
	t.Helper()
	for i := 0; i < fast.Len(); i++ {
		fn, fv := fast.At(i)
		sn, sv := slow.At(i)
		if string(fn) != string(sn) || string(fv) != string(sv) || fast.Checked(i) != slow.Checked(i) {
			t.Fatalf("%q: field %d %q: %q, the long way %q: %q", head, i, fn, fv, sn, sv)
		}
	}
}
