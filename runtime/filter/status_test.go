package filter

import (
	"testing"

	"github.com/sluice-proxy/sluice/runtime/stream"
)

// TestStatusOf: a response's :status as a number however it was added (a
// codec's handle, Add, an insert after regular fields), 0 for none or
// for one that is not a number.
func TestStatusOf(t *testing.T) {
	for i, tc := range []struct {
		add  func(h *stream.HeaderMap)
		want int
	}{
		{func(h *stream.HeaderMap) { h.AddPseudo(stream.PseudoStatus, []byte("404")) }, 404},
		{func(h *stream.HeaderMap) { h.Add("x-a", "1"); h.Add(stream.Status, "201") }, 201},
		{func(h *stream.HeaderMap) { h.Add(stream.Status, "200"); h.Set(stream.Status, "503") }, 503},
		{func(h *stream.HeaderMap) { h.Add(stream.Status, "2x0") }, 0},
		{func(h *stream.HeaderMap) { h.Add("status", "200") }, 0},
		{func(h *stream.HeaderMap) {}, 0},
	} {
		var h stream.HeaderMap
		tc.add(&h)
		if got := StatusOf(&h); got != tc.want {
			t.Errorf("case %d: StatusOf = %d, want %d", i, got, tc.want)
		}
	}
}
