package mesh

import (
	"strings"
	"testing"
)

func TestNextTraceparent(t *testing.T) {
	const in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	out, started := NextTraceparent(in)
	if started || !strings.HasPrefix(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(out, "-01") ||
		out == in || TraceID(out) == "" {
		t.Fatalf("NextTraceparent(%q) = %q, %v; want the trace id and flags kept, a new span id", in, out, started)
	}
	seen := map[string]bool{}
	for _, bad := range []string{"", "garbage", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		out, started := NextTraceparent(bad)
		if !started || TraceID(out) == "" || !strings.HasSuffix(out, "-01") || len(out) != 55 {
			t.Errorf("NextTraceparent(%q) = %q, %v; want a new sampled trace", bad, out, started)
		}
		if seen[TraceID(out)] {
			t.Errorf("trace id %s twice", TraceID(out))
		}
		seen[TraceID(out)] = true
	}
	if n := testing.AllocsPerRun(100, func() { NextTraceparent(in) }); n > 1 {
		t.Errorf("NextTraceparent: %v allocations, want the result string only", n)
	}
}
